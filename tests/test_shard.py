"""Sharded scoring and generation merge into exactly the single-job output.

Each shard runs in its own CPU process, both at once (the single job in the test's process),
through the functions the shard rules call (`score_completions(..., shard=)`,
`generate_method(..., shard=)`); the merge functions of the merge rules join them. Small batches
give many batches; a scoring shard takes whole batches of the single job's plan.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rewardcond.distributed import merge_generation_shards
from rewardcond.modeling import RewardConditionedLM
from rewardcond.reward_models.completions import merge_scored_shards
from rewardcond.reward_models.model import RewardModel
from rewardcond.scalers import make_scaler

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
SHARDS = 2


def tiny_gpt2(tokenizer, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    """Posts, completions of varied length, a tiny reward model and a tiny scalar policy."""
    root = tmp_path_factory.mktemp("shard_world")
    rng = np.random.default_rng(0)
    words = np.array(["roommate", "dishes", "rent", "debt", "card", "flat", "asked", "twice"])
    posts = pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(15)],
            "subreddit": [("relationships", "personalfinance")[i % 2] for i in range(15)],
            "title": [f"My roommate {i}" for i in range(15)],
            "post": [" ".join(rng.choice(words, rng.integers(3, 40))) for _ in range(15)],
            "reference": [" " + " ".join(rng.choice(words, 4)) for _ in range(15)],
        }
    )
    posts.to_parquet(root / "posts.parquet")
    completions = pd.DataFrame(
        {
            "completion_id": [f"{i:016x}" for i in range(45)],
            "post_id": [f"p{i % 15}" for i in range(45)],
            "text": [" " + " ".join(rng.choice(words, rng.integers(1, 15))) for _ in range(45)],
            "policy": "sup",
            "source": "comparison",
            "split": [("train", "valid1")[i % 2] for i in range(45)],
        }
    )
    completions.to_parquet(root / "completions.parquet")
    RewardModel.from_base(tiny_gpt2(tiny_tokenizer, seed=1)).save_pretrained(root / "rm")
    tiny_tokenizer.save_pretrained(root / "rm")
    scaler = make_scaler("standardize").fit(np.array([-1.0, 0.0, 2.0]))
    policy = RewardConditionedLM.from_base(tiny_gpt2(tiny_tokenizer, seed=2), scaler=scaler)
    policy.save_pretrained(root / "policy")
    tiny_tokenizer.save_pretrained(root / "policy")
    targets = [{"name": "q05", "value": -1.0, "in_range": True}]
    targets += [{"name": "max+1sd", "value": 3.0, "in_range": False}]
    (root / "targets.json").write_text(json.dumps(targets))
    return root


def run_in_processes(code: str, shards: list[str]) -> None:
    """Run `code` (with `SHARD` set) in one Python process per shard, all at once."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", f"SHARD = {shard!r}\n" + textwrap.dedent(code)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for shard in shards
    ]
    for shard, process in zip(shards, processes, strict=True):
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"shard {shard} failed:\n{output[-3000:]}"


SCORE = """
from rewardcond.reward_models.completions import score_completions
from rewardcond.reward_models.scoring import load_scorer
root = {root!r}
scorer = load_scorer(
    kind="train", path_or_hub_id=root + "/rm", template={template!r}, device="cpu",
    batch_tokens=300, progress=False,
)
score_completions(
    completions_path=root + "/completions.parquet", posts_path=root + "/posts.parquet",
    output_path=f"{{root}}/scored.{{SHARD}}.parquet", report_path=f"{{root}}/report.{{SHARD}}.json",
    scorer=scorer, shard=SHARD,
)
"""


def test_shard_scoring_merges_into_the_single_process_output(world):
    code = SCORE.format(root=str(world), template=TEMPLATE)
    exec(code, {"SHARD": "1-of-1"})  # the single job, in this process
    items = [f"{i}-of-{SHARDS}" for i in range(1, SHARDS + 1)]
    run_in_processes(code, items)

    report = merge_scored_shards(
        shard_paths=[world / f"scored.{item}.parquet" for item in items],
        report_paths=[world / f"report.{item}.json" for item in items],
        output_path=world / "scored.merged.parquet",
        report_path=world / "report.merged.json",
    )
    single = pd.read_parquet(world / "scored.1-of-1.parquet")
    merged = pd.read_parquet(world / "scored.merged.parquet")
    sizes = [len(pd.read_parquet(world / f"scored.{item}.parquet")) for item in items]
    assert sizes == [23, 22]
    assert len(merged) == len(single) == 45
    assert merged["completion_id"].tolist() == single["completion_id"].tolist()
    assert merged.columns.tolist() == single.columns.tolist()
    assert merged["reward"].tolist() == single["reward"].tolist()  # bit for bit
    assert merged["reward"].std() > 1e-3  # rewards differ between rows: a real comparison
    others = [column for column in single.columns if column != "reward"]
    pd.testing.assert_frame_equal(merged[others], single[others])
    single_report = json.loads((world / "report.1-of-1.json").read_text())
    for key in ("n_in", "n_scored", "n_skipped_empty", "n_truncated", "reward_model"):
        assert report[key] == single_report[key]
    assert report["shards"] == SHARDS


GENERATE = """
from rewardcond.summaries import GenerateSettings, generate_method
from rewardcond.methods import get_method
root = {root!r}
generate_method(
    get_method("scalar"), model_path=root + "/policy", prompts_path=root + "/posts.parquet",
    targets_path=root + "/targets.json", output_path=f"{{root}}/generations.{{SHARD}}.parquet",
    template={template!r}, settings=GenerateSettings(max_new_tokens=12, batch_size=4),
    seed=3, device="cpu", shard=SHARD,
)
"""


def test_shard_generation_merges_into_the_single_process_output(world):
    code = GENERATE.format(root=str(world), template=TEMPLATE)
    exec(code, {"SHARD": "1-of-1"})  # the single job, in this process
    items = [f"{i}-of-{SHARDS}" for i in range(1, SHARDS + 1)]
    run_in_processes(code, items)

    merged = merge_generation_shards(
        [world / f"generations.{item}.parquet" for item in items],
        world / "generations.merged.parquet",
    )
    single = pd.read_parquet(world / "generations.1-of-1.parquet")
    assert len(single) == 15 * 2  # prompts x targets
    assert single["text"].nunique() > 1  # greedy text differs between prompts
    pd.testing.assert_frame_equal(merged, single)
    pd.testing.assert_frame_equal(pd.read_parquet(world / "generations.merged.parquet"), single)


def test_scoring_at_demo_scale_is_byte_identical_for_1_2_and_3_shards(tmp_path, tiny_tokenizer):
    """3,000 completions of 1-30 words on 600 posts of 3-30 words (the demo scores 17,253 in
    batches of 8,192 tokens) with a 128-wide reward model, the demo's: every shard count gives
    the same Parquet bytes. Shards run in this process, one after the other; that a shard's
    rewards do not depend on which process runs it is the test above."""
    rng = np.random.default_rng(7)
    words = np.array(["roommate", "dishes", "rent", "debt", "card", "flat", "asked", "twice"])
    n_posts, n_rows = 600, 3000
    posts = pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n_posts)],
            "subreddit": "relationships",
            "title": [f"My roommate {i}" for i in range(n_posts)],
            "post": [" ".join(rng.choice(words, rng.integers(3, 30))) for _ in range(n_posts)],
        }
    )
    posts.to_parquet(tmp_path / "posts.parquet")
    pd.DataFrame(
        {
            "completion_id": [f"{i:016x}" for i in range(n_rows)],
            "post_id": [f"p{i}" for i in rng.integers(0, n_posts, n_rows)],
            "text": [" " + " ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(n_rows)],
            "policy": "sup",
            "source": "comparison",
            "split": "train",
        }
    ).to_parquet(tmp_path / "completions.parquet")
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tiny_tokenizer), n_embd=128, n_layer=2, n_head=4,
                        n_positions=256, pad_token_id=tiny_tokenizer.pad_token_id)  # fmt: skip
    from rewardcond.reward_models.scoring import RewardModelScorer

    scorer = RewardModelScorer(
        RewardModel.from_base(GPT2LMHeadModel(config).eval()),
        tiny_tokenizer,
        template=TEMPLATE,
        identity="trained:0123456789abcdef",
        batch_tokens=8192,
        progress=False,
    )
    from rewardcond.reward_models.completions import score_completions

    def run(count: int) -> bytes:
        items = [f"{i}-of-{count}" for i in range(1, count + 1)]
        for item in items:
            score_completions(
                completions_path=tmp_path / "completions.parquet",
                posts_path=tmp_path / "posts.parquet",
                output_path=tmp_path / f"scored.{item}.parquet",
                report_path=tmp_path / f"report.{item}.json",
                scorer=scorer,
                shard=item,
            )
        merge_scored_shards(
            shard_paths=[tmp_path / f"scored.{item}.parquet" for item in items],
            report_paths=[tmp_path / f"report.{item}.json" for item in items],
            output_path=tmp_path / f"merged.{count}.parquet",
            report_path=tmp_path / f"merged.{count}.json",
        )
        return (tmp_path / f"merged.{count}.parquet").read_bytes()

    with torch.inference_mode():
        single, two, three = run(1), run(2), run(3)
    table = pd.read_parquet(tmp_path / "merged.1.parquet")
    assert len(table) == n_rows and table["reward"].std() > 1e-3
    assert table["completion_id"].tolist() == [f"{i:016x}" for i in range(n_rows)]
    for count, merged in ((2, two), (3, three)):
        other = pd.read_parquet(tmp_path / f"merged.{count}.parquet")
        different = int((other["reward"].to_numpy() != table["reward"].to_numpy()).sum())
        assert different == 0, f"{count} shards: {different} of {n_rows} rewards differ"
        assert merged == single
        report = json.loads((tmp_path / f"merged.{count}.json").read_text())
        assert (report["n_in"], report["n_scored"], report["shards"]) == (n_rows, n_rows, count)

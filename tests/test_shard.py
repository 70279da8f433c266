"""Sharded scoring and generation merge into exactly the single-job output.

Each shard runs in its own CPU process, both at once (the single job in the test's process),
through the functions the shard rules call (`score_completions(..., shard=)`,
`generate_method(..., shard=)`); the merge functions of the merge rules join them. Small batches
make shards batch their rows differently from the single job, as they would on a cluster.
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
    np.testing.assert_allclose(merged["reward"], single["reward"], rtol=0, atol=1e-5)
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

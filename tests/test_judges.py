"""Judges the policy never saw (issue 17 §1, §3): the config's judges, their per-row scores and
verdicts, their agreement with the human labels on valid2, and the per-example release."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import build_tiny_tokenizer
from evaluation_world import make_world
from mock_chat_server import MockChatServer
from snakemake.utils import update_config
from transformers import GPTNeoXConfig, GPTNeoXForSequenceClassification

from rewardcond.config_schema import ConfigError, judge_errors, validate_config
from rewardcond.judges import ROW_KEYS
from rewardcond.judges.agreement import judge_agreement, proxy_row, valid2_comparisons
from rewardcond.judges.examples import examples_table, run_examples
from rewardcond.judges.scoring import score_summaries
from rewardcond.judges.stage import run_judge, run_judge_agreement
from rewardcond.reward_models.scoring import load_scorer
from rewardcond.stats import BootstrapSettings, bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
KEY = "sk-test-judges"
BOOTSTRAP = BootstrapSettings(n_resamples=200, level=0.9, seed=5)

# --- the config ------------------------------------------------------------------------------


def load_config(*overlays):
    config = {}
    for name in ("config.yaml", *overlays):
        update_config(config, yaml.safe_load((ROOT / "workflow/config" / name).read_text()))
    return config


def test_the_default_judge_is_another_model_than_the_proxy():
    config = validate_config(load_config(), SCHEMA_PATH)
    assert config["reward_model"]["kind"] == "train"  # the paper's recipe: GPT-2 + scalar head
    assert config["evaluate"]["main_judge"] == "deberta"
    (judge,) = config["evaluate"]["judges"]
    assert judge == {
        "name": "deberta",
        "kind": "reward_model",
        "hub_id": "OpenAssistant/reward-model-deberta-v3-large-v2",
        "revision": "c355404efa9ad2ad069f3a197cae0523c14244fc",
        "input_format": "pair",
        "template": None,
        "max_length": 512,
        "gpu_dtype": "float32",
        "batch_tokens": 16384,
    }


def test_the_demo_judges_with_gold():
    config = validate_config(load_config("demo.yaml"), SCHEMA_PATH)
    assert config["evaluate"]["judges"] == [{"name": "gold", "kind": "gold"}]
    assert config["evaluate"]["main_judge"] == "gold"


GOLD = {"name": "gold", "kind": "gold"}
DEBERTA = {
    "name": "deberta",
    "kind": "reward_model",
    "hub_id": "OpenAssistant/reward-model-deberta-v3-large-v2",
    "revision": "c355404efa9ad2ad069f3a197cae0523c14244fc",
}


@pytest.mark.parametrize(
    "overlays, evaluate, other, messages",
    [
        (
            ("demo.yaml",),
            {"judges": [GOLD, {**DEBERTA, "name": "gold"}], "main_judge": "gold"},
            {},
            [
                "evaluate.judges[1].name: 'gold' is already the name of evaluate.judges[0]; "
                "names must be unique (each names the column judge_<name>)"
            ],
        ),
        (
            (),
            {"judges": [GOLD], "main_judge": "gold"},
            {},
            [
                "evaluate.judges[0].kind: gold is the synthetic world's gold function and needs "
                "data.source: synthetic; data.source is 'openai' (use a reward_model or llm judge "
                "on real data)"
            ],
        ),
        (
            (),
            {"main_judge": "gpt4"},
            {},
            [
                "evaluate.main_judge: 'gpt4' is not the name of a judge; expected one of "
                "['deberta'] (evaluate.judges)"
            ],
        ),
        (
            (),
            {"judges": [], "main_judge": "deberta"},
            {},
            ["evaluate.main_judge: 'deberta' names a judge, but evaluate.judges is empty"],
        ),
        (
            (),
            {},
            {"reward_model": {"kind": "pretrained"}},
            [
                "evaluate.judges[0]: OpenAssistant/reward-model-deberta-v3-large-v2@"
                "c355404efa9ad2ad069f3a197cae0523c14244fc is the run's own reward model "
                "(reward_model.pretrained, the proxy the methods were conditioned on or optimised "
                "against); a judge must be a model the policy never saw"
            ],
        ),
    ],
    ids=[
        "duplicate-name",
        "gold-on-real-data",
        "unknown-main-judge",
        "main-without-judges",
        "judge-is-the-proxy",
    ],  # fmt: skip
)
def test_what_the_schema_cannot_check_is_an_error_naming_the_key(
    overlays, evaluate, other, messages
):
    config = load_config(*overlays)
    update_config(config, {"evaluate": evaluate, **other})
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA_PATH)
    assert error.value.errors == messages
    assert judge_errors(config) == messages


# --- a small world: posts with gold facts, a tiny causal reward model, a mock LLM judge -----------

FACTS = {
    "p0": [["dog", "brown"], ["cat", "black"]],
    "p1": [["car", "red"], ["job", "new"]],
    "p2": [["rent", "due"], ["sister", "upset"]],
}


@pytest.fixture
def world(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": k, "facts": v}) + "\n" for k, v in FACTS.items()))
    prompts = pd.DataFrame(
        {
            "post_id": list(FACTS),
            "subreddit": ["pets", "cars", "family"],
            "title": ["t0", "t1", "t2"],
            "post": [" ".join(f"my {e} is {a}." for e, a in facts) for facts in FACTS.values()],
            "reference": ["my dog is brown.", "my car is red. my job is new.", "my rent is due."],
        }
    )
    prompts.to_parquet(tmp_path / "prompts.parquet")
    rows = pd.DataFrame(
        {
            "method": "scalar",
            "post_id": ["p0", "p0", "p1", "p2"],
            "target_name": ["q05", "q50", "q50", "q50"],
            "target_reward": [-1.0, 0.0, 0.0, 0.0],
            "sample": 0,
            "text": [
                "my dog is brown. my cat is black.",  # all facts, longer than the reference
                "my dog is brown.",  # the reference itself
                "my car is red.",  # shorter than the reference
                "",  # empty
            ],
            "n_tokens": [9, 5, 5, 0],
            "finished": [True, True, False, True],
            "reward": [0.5, 0.1, -0.2, np.nan],
        }
    )
    rows.to_parquet(tmp_path / "scalar.parquet")
    return {"tmp": tmp_path, "gold": gold, "prompts": prompts, "rows": rows}


def causal_reward_model(folder: Path) -> Path:
    """A tiny GPT-NeoX sequence classifier with one label and its own pad token (as the Pythia
    TL;DR reward models have), saved as safetensors with its tokenizer."""
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), max_position_embeddings=256, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=1,
        initializer_range=0.2, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    GPTNeoXForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def causal_judge(folder: Path, name: str = "pythia") -> dict:
    return {
        "name": name,
        "kind": "reward_model",
        "scorer": {
            "kind": "pretrained",
            "path_or_hub_id": str(folder),
            "revision": "0" * 40,
            "template": "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:",
            "dtype": "float32",
            "max_length": None,
            "batch_tokens": 64,  # several batches, padded
            "input_format": "causal",
        },
    }


def test_a_causal_reward_model_reads_prompt_summary_and_eos_at_its_last_token(world):
    folder = causal_reward_model(world["tmp"] / "pythia")
    judge = causal_judge(folder)
    prompts = world["prompts"].set_index("post_id", drop=False)
    texts = [" my dog is brown.", " my dog is brown. my cat is black. and more words here"]
    scores = score_summaries(judge, ["p0", "p0"], texts, prompts, device="cpu")

    model = GPTNeoXForSequenceClassification.from_pretrained(folder).eval()
    scorer = load_scorer(**judge["scorer"], device="cpu", progress=False)
    tokenizer = scorer.tokenizer
    expected = []
    for text in texts:
        prompt = judge["scorer"]["template"].format(**prompts.loc["p0"])
        ids = tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([[*ids, tokenizer.eos_token_id]])).logits
        expected.append(float(logits[0, 0]))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    # the pair encoding of the same model reads other tokens, so gives other scores
    paired = load_scorer(**{**judge["scorer"], "input_format": "pair"}, device="cpu")
    assert not np.allclose(paired.score([dict(prompts.loc["p0"])] * 2, texts), expected)


def test_an_unknown_input_format_is_an_error(world):
    folder = causal_reward_model(world["tmp"] / "pythia")
    with pytest.raises(ValueError, match=r"input_format='value_head' of .*; expected 'pair' or"):
        load_scorer(**{**causal_judge(folder)["scorer"], "input_format": "value_head"})


def llm_judge(server, name="gpt", cache=None, tmp=None):
    settings = {
        "model": "judge-model",
        "base_url": server.base_url,
        "api_key_env": "JUDGE_KEY",
        "max_retries": 1,
        "backoff_initial_s": 0.001,
        "config_key": "evaluate.judges[2]",
    }
    return {"name": name, "kind": "llm", "settings": settings, "cache_dir": str(cache)}


def test_every_row_is_judged_by_every_judge(world, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", KEY)
    tmp = world["tmp"]
    folder = causal_reward_model(tmp / "pythia")
    with MockChatServer("longer") as server:
        judges = [
            {"name": "gold", "kind": "gold", "path": str(world["gold"])},
            causal_judge(folder),
            llm_judge(server, cache=tmp / "cache"),
        ]
        judged = run_judge(
            rows_path=tmp / "scalar.parquet",
            prompts_path=tmp / "prompts.parquet",
            output=tmp / "judged/scalar.parquet",
            summaries={"gpt": tmp / "judges/gpt/scalar.json"},
            judges=judges,
            device="cpu",
            bootstrap=BOOTSTRAP,
        )
        asked = len(server.requests)
    assert judged.equals(pd.read_parquet(tmp / "judged/scalar.parquet"))
    assert list(judged.columns) == [*ROW_KEYS, "judge_gold", "judge_pythia", "judge_gpt"]
    assert judged[list(ROW_KEYS)].equals(world["rows"][list(ROW_KEYS)])
    assert judged["judge_gold"].tolist() == [1.0, 0.5, 0.5, 0.0]
    direct = load_scorer(**causal_judge(folder)["scorer"], device="cpu", on_empty="skip")
    posts = world["prompts"].set_index("post_id").loc[["p0", "p0", "p1"]].to_dict("records")
    np.testing.assert_allclose(
        judged["judge_pythia"][:3], direct.score(posts, world["rows"]["text"][:3])
    )
    assert np.isnan(judged["judge_pythia"][3])  # an empty summary: skipped, as the proxy does
    # longer than the reference wins, the reference itself ties unasked, shorter loses
    assert judged["judge_gpt"].tolist() == [1.0, 0.5, 0.0, 0.0]
    assert asked == 6  # three rows differ from their reference, two orders each
    summary = json.loads((tmp / "judges/gpt/scalar.json").read_text())
    assert (summary["name"], summary["n_rows"], summary["n_identical"]) == ("gpt", 4, 1)
    rates = {group["target_name"]: group["win_rate"] for group in summary["groups"]}
    assert rates == {"q05": 1.0, "q50": pytest.approx(0.5 / 3)}


def test_the_references_are_judged_too(world, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", KEY)
    tmp = world["tmp"]
    with MockChatServer("longer") as server:
        judged = run_judge(
            rows_path=None,
            prompts_path=tmp / "prompts.parquet",
            output=tmp / "judged/references.parquet",
            summaries={"gpt": tmp / "judges/gpt/references.json"},
            judges=[
                {"name": "gold", "kind": "gold", "path": str(world["gold"])},
                llm_judge(server, cache=tmp / "cache"),
            ],
        )
        assert server.requests == []  # a reference against itself is a tie, asked of no one
    assert list(judged.columns) == ["post_id", "judge_gold", "judge_gpt"]
    assert judged["post_id"].tolist() == ["p0", "p1", "p2"]
    assert judged["judge_gold"].tolist() == [0.5, 1.0, 0.5]
    assert judged["judge_gpt"].tolist() == [0.5, 0.5, 0.5]


# --- agreement with the human labels on valid2 --------------------------------------------------

FULL, HALF = "my dog is brown. my cat is black.", "my dog is brown."


def comparisons() -> pd.DataFrame:
    """valid2 pairs of p0 (gold: FULL 1.0 > HALF 0.5, FULL is also the longer), one valid1 pair
    and one CNN/DM pair that must be left out."""
    rows = [
        ("p0", HALF, FULL, 1, "valid2", "tldr"),  # labeller agrees with gold and length
        ("p0", FULL, HALF, 0, "valid2", "tldr"),  # agrees
        ("p0", FULL, HALF, 1, "valid2", "tldr"),  # disagrees
        ("p0", HALF, HALF, 0, "valid2", "tldr"),  # a tie for every judge
        ("p0", HALF, FULL, 0, "valid1", "tldr"),
        ("p0", HALF, FULL, 0, "valid2", "cnndm"),
    ]
    columns = ["post_id", "summary_0", "summary_1", "choice", "split", "domain"]
    return pd.DataFrame(rows, columns=columns).assign(confidence=np.nan)


def test_valid2_comparisons_are_the_tldr_ones_of_valid2():
    pairs = valid2_comparisons(comparisons())
    assert pairs["choice"].tolist() == [1, 0, 1, 0] and len(pairs) == 4
    assert len(valid2_comparisons(comparisons(), max_comparisons=2, seed=1)) == 2
    with pytest.raises(ValueError, match="no valid2 comparisons of domain tldr"):
        valid2_comparisons(comparisons().query("split != 'valid2'"))


def test_gold_and_llm_agreement_count_ties_as_half(world, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", KEY)
    pairs = valid2_comparisons(comparisons())
    posts = world["prompts"].set_index("post_id", drop=False)
    gold = {"name": "gold", "kind": "gold", "path": str(world["gold"])}
    assert judge_agreement(gold, pairs, posts).tolist() == [1.0, 1.0, 0.0, 0.5]
    with MockChatServer("longer") as server:
        judge = llm_judge(server, cache=world["tmp"] / "cache")
        assert judge_agreement(judge, pairs, posts).tolist() == [1.0, 1.0, 0.0, 0.5]
    with MockChatServer("always_a") as server:  # a position bias only: every order disagrees
        judge = llm_judge(server, cache=world["tmp"] / "cache_a")
        assert judge_agreement(judge, pairs, posts).tolist() == [0.5, 0.5, 0.5, 0.5]
    with MockChatServer("malformed") as server:
        judge = llm_judge(server, cache=world["tmp"] / "cache_m")
        result = judge_agreement(judge, pairs, posts)
    assert np.isnan(result[:3]).all() and result[3] == 0.5  # identical pair: tie, not asked


ACCURACY = pd.DataFrame(
    {
        "kind": ["measured", "measured", "measured", "anchor"],
        "model": ["trained:abc", "trained:abc", "trained:abc", "Pythia-6.9B RM"],
        "domain": ["tldr", "tldr", "tldr", "tldr"],
        "split": ["valid2", "valid2", "valid1", "other setup"],
        "subset": ["all", "confidence=9", "all", "all"],
        "n": [400, 30, 500, None],
        "n_unscored": [2, 0, 0, None],
        "accuracy": [0.61, 0.8, 0.6, 0.69],
        "ci_low": [0.56, 0.6, 0.55, None],
        "ci_high": [0.66, 0.9, 0.65, None],
    }
)


def test_the_judges_table_holds_the_proxy_row_and_one_row_per_judge(world, tmp_path):
    comparisons().to_parquet(tmp_path / "comparisons.parquet")
    world["prompts"].to_parquet(tmp_path / "posts.parquet")
    ACCURACY.to_csv(tmp_path / "accuracy.csv", index=False)
    table = run_judge_agreement(
        comparisons_path=tmp_path / "comparisons.parquet",
        posts_path=tmp_path / "posts.parquet",
        accuracy_path=tmp_path / "accuracy.csv",
        csv_path=tmp_path / "tables/judges.csv",
        md_path=tmp_path / "tables/judges.md",
        judges=[{"name": "gold", "kind": "gold", "path": str(world["gold"])}],
        identities={"gold": "gold function of the synthetic world"},
        bootstrap=BOOTSTRAP,
    )
    written = pd.read_csv(tmp_path / "tables/judges.csv")
    assert written["judge"].tolist() == ["proxy", "gold"]
    assert written.iloc[0].to_dict() == {
        "judge": "proxy", "kind": "proxy", "model": "trained:abc", "split": "valid2", "n": 400,
        "n_unjudged": 2, "agreement": 0.61, "ci_low": 0.56, "ci_high": 0.66,
        "source": "reward_model/accuracy.csv",
    }  # fmt: skip
    gold = table.iloc[1]
    assert (gold["n"], gold["n_unjudged"], gold["agreement"]) == (4, 0, 0.625)
    assert (gold["ci_low"], gold["ci_high"]) == bootstrap_ci(
        [1.0, 1.0, 0.0, 0.5], n_resamples=200, level=0.9, seed=5
    )
    assert (
        "the 4 valid2 comparisons (90% bootstrap CIs" in (tmp_path / "tables/judges.md").read_text()
    )


def test_a_proxy_table_without_its_valid2_row_is_an_error():
    with pytest.raises(ValueError, match="has 0 measured valid2 rows over all comparisons"):
        proxy_row(ACCURACY[ACCURACY["split"] != "valid2"])


# --- the per-example release ---------------------------------------------------------------------


def judged_frames(frames):
    return [
        frame[list(ROW_KEYS)].assign(judge_gold=frame["gold"], judge_gpt=0.5) for frame in frames
    ]


def test_examples_hold_every_generation_with_proxy_and_judges(tmp_path):
    frames, _ = make_world()
    paths = []
    for frame, judged in zip(frames, judged_frames(frames), strict=True):
        method = frame["method"].iloc[0]
        frame.to_parquet(tmp_path / f"{method}.parquet")
        judged.sample(frac=1.0, random_state=0).to_parquet(tmp_path / f"{method}.judged.parquet")
        paths.append(method)
    table = run_examples(
        evaluated=[tmp_path / f"{m}.parquet" for m in paths],
        judged=[tmp_path / f"{m}.judged.parquet" for m in paths],
        parquet_path=tmp_path / "tables/examples.parquet",
        csv_path=tmp_path / "tables/examples.csv",
    )
    assert list(table.columns) == [
        "post_id", "method", "condition", "target", "sample", "text", "length", "eos",
        "proxy_reward", "judge_gold", "judge_gpt",
    ]  # fmt: skip
    assert len(table) == sum(len(frame) for frame in frames) == 112
    everything = pd.concat(frames, ignore_index=True)
    assert table["proxy_reward"].tolist() == everything["reward"].tolist()
    assert table["judge_gold"].tolist() == everything["gold"].tolist()  # matched by key
    assert table["condition"].tolist() == everything["target_name"].tolist()
    assert len(pd.read_csv(tmp_path / "tables/examples.csv")) == 112
    assert pd.read_parquet(tmp_path / "tables/examples.parquet").equals(table)


def test_examples_refuse_judged_rows_that_miss_a_generation():
    frames, _ = make_world()
    judged = judged_frames(frames)
    judged[1] = judged[1].iloc[1:]
    with pytest.raises(ValueError) as error:
        examples_table(frames, judged)
    assert str(error.value) == (
        "method text: 48 evaluated rows but 47 judged rows (1 evaluated rows without "
        "judgments); rerun the judge rule"
    )

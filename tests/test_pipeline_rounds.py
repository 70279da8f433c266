"""Two tiny online rounds end to end (issue 18): the rounds overlay of the demo, shrunk, run by
Snakemake in a copy of the checkout; then what a changed round setting reruns. In the same
checkout (its world and base model reused), a second run of replicate seeds and pool percents
(issue 19) end to end, and what adding a seed reruns."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rewardcond.modeling import RewardConditionedLM
from rewardcond.trainset import post_order

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["workflow/config/demo.yaml", "workflow/config/rounds.yaml", "tiny.yaml"]
# The demo world and models shrunk to seconds; two rounds of scalar against sft.
TINY = """\
run: tiny-rounds
methods: [scalar, sft]
synthetic: {n_posts: 200, n_workers: 1}
base_models:
  tiny-gpt2:
    model_config: {n_layer: 1, n_embd: 32, n_head: 2}
    tokenizer: {vocab_size: 400}
    pretraining: {steps: 20, warmup_steps: 2}
reward_model: {bootstrap_samples: 100}
train:
  max_steps: 6
  save_steps: 3
  logging_steps: 2
  overrides: {sft: {max_steps: 6}}
  rounds: 2
  online: {samples_per_prompt: 1, steps: 4}
generate: {n_prompts: 8}
evaluate: {bootstrap_samples: 100, kl_samples: 1}
"""


def snakemake(workdir: Path, *args: str, configs=CONFIGS) -> str:
    command = [sys.executable, "-m", "snakemake", *args, "--configfile", *configs]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def jobs_to_run(workdir: Path, configs=CONFIGS) -> dict[str, int]:
    output = snakemake(workdir, "--dry-run", "--quiet", "rules", configs=configs)
    rows = re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)
    return {rule: int(count) for rule, count in rows if rule not in ("job", "total")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    checkout = tmp_path_factory.mktemp("rounds") / "checkout"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    (checkout / "tiny.yaml").write_text(TINY)
    snakemake(checkout, "--cores", "2")
    return checkout


def test_round_two_samples_scores_grows_the_pool_and_continues_round_one(finished):
    results = finished / "results/tiny-rounds"
    report = json.loads((results / "trainsets/scalar-r2.json").read_text())
    pool = pd.read_parquet(results / "trainsets/scalar.parquet")
    grown = pd.read_parquet(results / "trainsets/scalar-r2.parquet")
    samples = pd.read_parquet(results / "rounds/scalar-r2.samples.parquet")
    posts = pool["post_id"].nunique()
    assert report["prompts"] == posts and report["samples"] == posts  # K = 1
    assert report["n_scored"] + report["n_skipped_empty"] == posts
    assert len(samples) == report["n_scored"]
    assert len(grown) == len(pool) + report["n_scored"] == report["pool_out"]
    assert grown["round"].value_counts().to_dict() == {1: len(pool), 2: report["n_scored"]}
    manifest = json.loads((results / "models/scalar-r2/manifest.json").read_text())
    assert manifest["params"]["continue_training"] is True
    assert manifest["global_step"] == 4 and manifest["params"]["rows"] == len(grown)
    one = RewardConditionedLM.from_pretrained(results / "models/scalar")
    two = RewardConditionedLM.from_pretrained(results / "models/scalar-r2")
    assert two.scaler.to_dict() == one.scaler.to_dict()  # round 1's scaler, kept


def test_each_round_is_evaluated_and_costed(finished):
    results = finished / "results/tiny-rounds"
    generations = pd.read_parquet(results / "generations/scalar-r2.parquet")
    assert set(generations["method"]) == {"scalar-r2"}
    targets = json.loads((results / "targets.json").read_text())
    assert len(generations) == 8 * len(targets)
    report = json.loads((results / "trainsets/scalar-r2.json").read_text())
    winrate = pd.read_csv(results / "tables/winrate.csv").set_index("method")
    assert winrate["round"].to_dict() == {"scalar": 1, "scalar-r2": 2, "sft": 1}
    assert winrate.loc["scalar-r2", "online_samples"] == report["samples"]
    assert winrate.loc["scalar-r2", "online_sampled_tokens"] == report["sampled_tokens"]
    assert winrate.loc["scalar", "online_samples"] == 0
    summary = pd.read_csv(results / "tables/summary.csv")
    assert (summary["method"] == "scalar-r2").sum() == len(targets)


def test_a_round_setting_reruns_that_round_onwards_only(finished, tmp_path):
    assert jobs_to_run(finished) == {}
    steps = finished / "steps.yaml"
    steps.write_text("train: {online: {steps: 5}}\n")
    jobs = jobs_to_run(finished, [*CONFIGS, str(steps)])
    assert jobs["train_round"] == 1 and "train" not in jobs and "online_round" not in jobs
    assert jobs["generate_summaries"] == 1 and jobs["kl"] == 1 and jobs["publish"] == 1
    samples = finished / "samples.yaml"
    samples.write_text("train: {online: {samples_per_prompt: 2}}\n")
    jobs = jobs_to_run(finished, [*CONFIGS, str(samples)])
    assert jobs["online_round"] == 1 and jobs["train_round"] == 1 and "train" not in jobs


# --- replicate seeds and pool percents (issue 19), in the same checkout ---------------------------
# Rounds do not combine with them (a config error), so a run of its own: scalar at 100 % and 50 %
# of its pool and sft, each at the demo's seed 1234 and at seed 7.
VARIANTS = """\
run: tiny-variants
train:
  rounds: 1
  seeds: [1234, 7]
  pool_percents: [50, 100]
"""
VARIANT_MODELS = {"sft", "sft-s7", "scalar", "scalar-f50", "scalar-s7", "scalar-f50-s7"}


@pytest.fixture(scope="module")
def variants(finished) -> tuple[Path, list[str]]:
    (finished / "variants.yaml").write_text(VARIANTS)
    configs = [*CONFIGS, "variants.yaml"]
    snakemake(finished, "--cores", "2", configs=configs)
    return finished, configs


def test_every_seed_and_percent_is_a_model_with_its_rows_in_the_tables(variants):
    results = variants[0] / "results/tiny-variants"
    assert {path.name for path in (results / "models").iterdir()} == VARIANT_MODELS
    targets = json.loads((results / "targets.json").read_text())
    summary = pd.read_csv(results / "tables/summary.csv")
    assert list(summary.columns[:3]) == ["method", "seed", "pool_percent"]
    rows = summary.groupby("method").agg(
        n=("target_name", "size"), seed=("seed", "unique"), percent=("pool_percent", "unique")
    )
    variant = {name: (tuple(r.seed), tuple(r.percent)) for name, r in rows.iterrows()}
    assert variant == {
        "sft": ((1234,), (100,)),
        "sft-s7": ((7,), (100,)),
        "scalar": ((1234,), (100,)),
        "scalar-f50": ((1234,), (50,)),
        "scalar-s7": ((7,), (100,)),
        "scalar-f50-s7": ((7,), (50,)),
    }
    assert rows["n"].to_dict() == {
        name: 1 if name.startswith("sft") else len(targets) for name in VARIANT_MODELS
    }
    winrate = pd.read_csv(results / "tables/winrate.csv").set_index("method")
    assert winrate[["seed", "pool_percent"]].to_dict("index") == {
        name: {"seed": seed[0], "pool_percent": percent[0]}
        for name, (seed, percent) in variant.items()
    }
    correlation = pd.read_csv(results / "tables/correlation.csv").set_index("method")
    assert correlation[["seed", "pool_percent"]].to_dict("index") == {
        "scalar": {"seed": 1234, "pool_percent": 100},
        "scalar-f50": {"seed": 1234, "pool_percent": 50},
        "scalar-s7": {"seed": 7, "pool_percent": 100},
        "scalar-f50-s7": {"seed": 7, "pool_percent": 50},
    }


def test_a_percent_trains_on_half_the_posts_and_a_seed_on_its_own_sft(variants):
    results = variants[0] / "results/tiny-variants"
    pool = pd.read_parquet(results / "trainsets/scalar.parquet")
    half = pd.read_parquet(results / "trainsets/scalar-f50.parquet")
    posts = pool["post_id"].nunique()
    kept = post_order(pool["post_id"], 1234)[: (50 * posts + 50) // 100]
    assert set(half["post_id"]) == set(kept)
    assert len(half) == pool["post_id"].isin(kept).sum()  # whole posts
    report = json.loads((results / "trainsets/scalar-f50.json").read_text())
    assert (report["posts"], report["rows"], report["pool_posts"]) == (len(kept), len(half), posts)
    for name, seed, trainset, start in [
        ("scalar-f50-s7", 7, "scalar-f50", "sft-s7"),
        ("scalar-s7", 7, "scalar", "sft-s7"),
        ("scalar-f50", 1234, "scalar-f50", "sft"),
        ("sft-s7", 7, "sft", None),
    ]:
        manifest = json.loads((results / f"models/{name}/manifest.json").read_text())
        assert manifest["seed"] == seed, name
        rows = pd.read_parquet(results / f"trainsets/{trainset}.parquet")
        assert manifest["params"]["rows"] == len(rows), name
        inputs = set(manifest["inputs"])
        assert f"results/tiny-variants/trainsets/{trainset}.parquet" in inputs, name
        if start is not None:
            assert f"results/tiny-variants/models/{start}" in inputs, name
    one = RewardConditionedLM.from_pretrained(results / "models/scalar")
    seven = RewardConditionedLM.from_pretrained(results / "models/scalar-s7")
    assert not all(a.equal(b) for a, b in zip(one.parameters(), seven.parameters(), strict=True))


def test_adding_a_seed_runs_only_that_seeds_jobs(variants):
    checkout, configs = variants
    assert jobs_to_run(checkout, configs) == {}
    more = checkout / "more.yaml"
    more.write_text("train: {seeds: [1234, 7, 8]}\n")
    jobs = jobs_to_run(checkout, [*configs, str(more)])
    assert jobs == {
        "train": 3,  # sft-s8, scalar-s8, scalar-f50-s8
        "generate_summaries": 3,
        "merge_generations": 3,
        "kl": 3,
        "evaluate": 3,
        "judge": 3,
        "examples": 1,
        "publish": 1,
        "all": 1,
    }

"""Two tiny online rounds end to end (issue 18): the rounds overlay of the demo, shrunk, run by
Snakemake in a copy of the checkout; then what a changed round setting reruns."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rewardcond.modeling import RewardConditionedLM

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

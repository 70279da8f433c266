"""The workflow's declared software stays in step with the package's."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_mirrors_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "workflow/envs/rewardcond.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    expected = project["dependencies"] + project["optional-dependencies"]["gguf"]
    assert sorted(pip_section) == sorted(expected)


@pytest.fixture(scope="module")
def demo_dry_run() -> str:
    """What `snakemake -n -F --configfile workflow/config/demo.yaml` prints (every job)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "-F",
            "--configfile",
            "workflow/config/demo.yaml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stdout


def test_demo_jobs_leading_to_the_long_trainings_run_first(demo_dry_run):
    """Snakemake starts the ready job of highest priority first: on the demo's 2 cores the reward
    model first, then the trainings (sft's first, which the others start from) before
    generation, KL, evaluation and judging (workflow/rules/common.smk, STAGE_PRIORITY)."""
    jobs = re.findall(
        r"^rule (\w+):\n(?:    (?!priority).*\n)*?    priority: (\d+)\n", demo_dry_run, re.M
    )
    priority = {}
    for rule, value in jobs:
        priority.setdefault(rule, set()).add(int(value))
    assert priority["train_reward_model"] == priority["score_completions"] == {70}
    assert priority["train"] == {50, 55}
    assert priority["trainset"] == {60, 65} and priority["targets"] == {60}
    assert priority["generate_summaries"] == priority["kl"] == {40, 45}
    assert priority["kl_best_of_n"] == priority["generate_best_of_n"] == {40}
    assert priority["evaluate"] == {30, 35} and priority["judge"] == {20, 25}
    assert "publish" not in priority  # priority 0, which a dry run does not print
    train_sft = [
        block
        for block in demo_dry_run.split("\n\n")
        if "\nrule train:\n" in block and "wildcards: method=sft\n" in block
    ]
    assert len(train_sft) == 1 and "    priority: 55\n" in train_sft[0]


def test_demo_trainings_run_as_one_plain_process(demo_dry_run):
    """On `device: cpu` with one process, `python -m` starts each training (the same weights as
    `accelerate launch`, without its start-up); the real config keeps `accelerate launch`
    (tests/test_slurm_profile.py)."""
    commands = re.findall(r"^Shell command: (.*)$", demo_dry_run, re.M)
    trainings = [c for c in commands if "rewardcond.train" in c or "reward_models.training" in c]
    assert len(trainings) == 7  # the reward model and six methods
    assert sum(c.startswith("python -m rewardcond.train --method ") for c in trainings) == 6
    assert sum(c.startswith("python -m rewardcond.reward_models.training ") for c in trainings) == 1
    assert not any("accelerate" in c for c in commands)

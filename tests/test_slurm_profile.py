"""The SLURM profile: a dry run of the real experiment plans the sbatch jobs we mean to submit.

It runs with snakemake-executor-plugin-slurm and SLURM commands that all fail, so a dry run
provably needs no SLURM installation (CI has none): the plugin's one probe (`scontrol show
config`, for the job-status polling interval) fails harmlessly, and nothing is submitted.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "sacctmgr", "sinfo", "scontrol", "srun")
METHODS = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["methods"]
# Best-of-N trains nothing and samples from the sft model in one job of its own.
TRAINED = [method for method in METHODS if not re.fullmatch(r"bon[0-9]+", method)]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """Jobs of `snakemake -n --workflow-profile profiles/slurm`: (rule, resources, shell)."""
    fake_bin = tmp_path_factory.mktemp("fake_slurm")
    called = fake_bin / "called"
    for command in SLURM_COMMANDS:
        script = fake_bin / command
        script.write_text(f"#!/bin/sh\necho {command} >> {called}\nexit 1\n")
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "profiles/slurm"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    calls = called.read_text().split() if called.exists() else []
    assert "sbatch" not in calls and "srun" not in calls, calls
    output = result.stdout + result.stderr
    assert "This was a dry-run" in output
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\nrule )", output):
        rule = re.search(r"^rule (\w+):", block, re.MULTILINE)
        if rule is None:
            continue
        resources = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        shell = re.search(r"^Shell command: (.*)$", block, re.MULTILINE)
        jobs.append(
            (
                rule.group(1),
                dict(item.split("=", 1) for item in resources.group(1).split(", ")),
                shell.group(1) if shell else None,
            )
        )
    return jobs


def of(jobs, rule):
    return [job for job in jobs if job[0] == rule]


def test_slurm_train_asks_for_its_gpus_on_one_node(dry_run):
    train = of(dry_run, "train")
    assert len(train) == len(TRAINED)  # one job per trained method
    for _, resources, shell in train:
        assert resources["gpu"] == "8"  # scale.train_processes of the real config
        assert resources["nodes"] == "1"
        assert resources["cpus_per_task"] == "64"
        assert resources["runtime"] == "1440"
        assert "accelerate launch --config_file workflow/accelerate/ddp.yaml" in shell
        assert "--num_processes 8 --module rewardcond.train" in shell


def test_slurm_shards_are_one_gpu_jobs(dry_run):
    score = of(dry_run, "score_completions")
    generate = of(dry_run, "generate_summaries")
    assert len(score) == 16  # set-scatter score: 16
    assert len(generate) == len(TRAINED) * 4  # trained methods x set-scatter generate: 4
    for _, resources, _ in score + generate:
        assert (resources["gpu"], resources["mem_mb"], resources["runtime"]) == (
            "1",
            "32000",
            "240",
        )
    assert len(of(dry_run, "merge_scored_completions")) == 1
    assert len(of(dry_run, "merge_generations")) == len(TRAINED)


def test_slurm_every_job_has_memory_runtime_and_cpus(dry_run):
    for rule, resources, _ in dry_run:
        if rule == "all":
            continue
        assert int(resources["mem_mb"]) >= 4000, rule
        assert int(resources["runtime"]) >= 60, rule
        assert int(resources["cpus_per_task"]) >= 1, rule

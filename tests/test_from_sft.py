"""Which model each method's training starts from (`train.from_sft`), read off dry runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(*config):
    """(return code, output) of a dry run of every demo job, with `--config` overrides."""
    command = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1"]
    command += ["--configfile", "workflow/config/demo.yaml"]
    if config:
        command += ["--config", *config]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def train_starts(output):
    """{method: the model folder its train job starts from} of a dry run's output."""
    starts = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\nrule )", output):
        if re.search(r"^rule train:", block, re.MULTILINE):
            method = re.search(r"^\s+wildcards: method=(\w+)", block, re.MULTILINE).group(1)
            inputs = re.search(r"^\s+input: (.*)$", block, re.MULTILINE).group(1).split(", ")
            starts[method] = next(i for i in inputs if "/models/" in i)
    return starts


def test_demo_policies_start_from_the_sft_model():
    code, output = dry_run()
    assert code == 0, output[-3000:]
    assert train_starts(output) == {
        "sft": "data/models/tiny-gpt2",
        "scalar": "results/demo/models/sft",
        "tokens": "results/demo/models/sft",
        "text": "results/demo/models/sft",
        "dpo": "results/demo/models/sft",
        "rloo": "results/demo/models/sft",
    }


def test_an_empty_from_sft_starts_all_but_dpo_and_rloo_from_the_base():
    code, output = dry_run("train={'from_sft': []}")
    assert code == 0, output[-3000:]
    starts = train_starts(output)
    assert starts.pop("dpo") == starts.pop("rloo") == "results/demo/models/sft"
    assert set(starts.values()) == {"data/models/tiny-gpt2"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("methods=['scalar','tokens']", r"methods \['scalar', 'tokens'\] start from .* list sft"),
        ("train={'from_sft': ['sft']}", "train.from_sft lists 'sft'"),
    ],
)
def test_from_sft_without_an_sft_model_is_an_error(override, message):
    code, output = dry_run(override)
    assert code != 0
    assert re.search(message, output), output[-3000:]

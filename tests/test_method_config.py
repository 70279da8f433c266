"""The configs run every method of issues 9 and 16, with options the schema and the classes
accept."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from rewardcond.methods import get_method

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
ALL_METHODS = ["scalar", "sft", "tokens", "text", "dpo", "rloo", "bon4", "bon16"]


def load_config(*overlays):
    config = {}
    for name in ("config.yaml", *overlays):
        update_config(config, yaml.safe_load((ROOT / "workflow/config" / name).read_text()))
    return config


@pytest.mark.parametrize("overlays", [(), ("demo.yaml",)])
def test_every_method_runs_with_options_its_class_accepts(overlays):
    config = load_config(*overlays)
    validate(config, SCHEMA)
    assert config["methods"] == ALL_METHODS
    options = config["method_options"]
    for name in ALL_METHODS:
        family = "bon" if name.startswith("bon") else name
        method = get_method(name, options.get(family, {}))
        assert method.name == name
    assert [get_method(n, options["bon"]).n_candidates for n in ("bon4", "bon16")] == [4, 16]
    assert options["text"]["scaler"] == options["scalar"]["scaler"]
    # null: derived from the trainset bounds (test_dpo_max_length_null_is_the_trainset_bounds...).
    assert options["dpo"]["max_length"] is None
    assert options["rloo"]["max_completion_length"] is None  # generate.max_new_tokens (below)


@pytest.mark.parametrize(
    ("overlays", "needed"),
    [((), 512 + 48 + 1), (("demo.yaml",), 160 + 48 + 1)],
    ids=["real", "demo"],
)
def test_dpo_max_length_null_is_the_trainset_bounds_plus_eos(overlays, needed):
    config = load_config(*overlays)
    trainset = config["trainset"]
    assert trainset["max_prompt_tokens"] + trainset["max_completion_tokens"] + 1 == needed
    command = [sys.executable, "-m", "snakemake", f"results/{config['run']}/models/dpo"]
    command += ["-n", "-p", "--forceall", "--cores", "1"]
    for name in overlays:
        command += ["--configfile", f"workflow/config/{name}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    options = re.search(r"--method dpo --method-options '([^']*)'", result.stdout).group(1)
    assert json.loads(options) == {"beta": 0.1, "loss_type": "sigmoid", "max_length": needed}


@pytest.mark.parametrize(
    ("overlays", "reward_model"),
    [
        # the real config's proxy is the GPT-2 reward model trained here (README "Judges")
        ((), "results/tldr-gpt2/reward_model/model"),
        (("demo.yaml",), "results/demo/reward_model/model"),
    ],
    ids=["real", "demo"],
)
def test_rloo_trains_against_the_runs_reward_model(overlays, reward_model):
    config = load_config(*overlays)
    command = [sys.executable, "-m", "snakemake", f"results/{config['run']}/models/rloo"]
    command += ["-n", "-p", "--forceall", "--cores", "1"]
    for name in overlays:
        command += ["--configfile", f"workflow/config/{name}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    options = re.search(r"--method rloo --method-options '([^']*)'", result.stdout).group(1)
    # max_completion_length null: the evaluation's generate.max_new_tokens.
    assert json.loads(options) == {
        **config["method_options"]["rloo"],
        "max_completion_length": config["generate"]["max_new_tokens"],
    }
    scorer = re.search(r"--method rloo .* --scorer '([^']*)'", result.stdout).group(1)
    assert json.loads(scorer)["path_or_hub_id"] == reward_model
    assert json.loads(scorer)["kind"] == config["reward_model"]["kind"]
    assert re.search(r"--method sft .* --scorer null ", result.stdout)
    train_inputs = re.search(r"input: (.*)\n(?:.*\n){0,2}\s+output: results/[^/]+/models/rloo\n",
                             result.stdout).group(1).split(", ")  # fmt: skip
    assert train_inputs[:2] == [reward_model, f"results/{config['run']}/trainsets/rloo.parquet"]
    assert f"results/{config['run']}/models/sft" in train_inputs


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("dpo", {"beta": 0}, "less than or equal to the minimum of 0"),
        ("text", {"precison": 2}, "Additional properties are not allowed"),
        ("bon", {"top_p": 1.5}, "greater than the maximum of 1"),
        ("rloo", {"num_generations": 1}, "1 is less than the minimum of 2"),
        ("rloo", {"max_completion_length": 0}, "0 is less than the minimum of 1"),
    ],
)
def test_schema_rejects_bad_method_options(section, value, message):
    config = load_config()
    config["method_options"][section] = value
    with pytest.raises(WorkflowError, match=message):
        validate(config, SCHEMA)

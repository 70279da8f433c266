"""The experiment's config sections: both configs validate and build the library's settings."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from rewardcond.distributed import plan_batches
from rewardcond.generate import GenerateSettings
from rewardcond.methods import get_method
from rewardcond.train import TrainSettings
from rewardcond.trainset import TrainsetSettings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def load(name):
    return yaml.safe_load((ROOT / "workflow/config" / name).read_text())


def merged(base, over):
    """Snakemake's --configfile merge: dicts merge, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        is_dict = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if is_dict else value
    return out


@pytest.mark.parametrize("demo", [False, True], ids=["real", "demo"])
def test_config_sections_build_every_settings_object(demo):
    config = load("config.yaml")
    if demo:
        config = merged(config, load("demo.yaml"))
    validate(config, schema=SCHEMA)
    for method in config["methods"]:
        get_method(method, config.get("method_options", {}).get(method))
    TrainsetSettings(**{k: v for k, v in config["trainset"].items() if k != "targets"})
    train = {
        k: v for k, v in config["train"].items() if k not in ("overrides", "base_model", "from_sft")
    }
    for method in config["methods"]:
        settings = TrainSettings(**train | config["train"]["overrides"].get(method, {}))
        plan = plan_batches(
            settings.global_batch_size,
            num_processes=1,
            max_per_device_batch_size=settings.per_device_batch_size,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
        )
        assert plan.gradient_accumulation_steps >= 1
    generate = {k: v for k, v in config["generate"].items() if k != "n_prompts"}
    GenerateSettings(**generate, max_prompt_tokens=config["trainset"]["max_prompt_tokens"])
    assert config["train"]["base_model"] == ("tiny-gpt2" if demo else "gpt2")
    assert config["train"]["base_model"] in config["base_models"]

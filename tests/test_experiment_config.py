"""The experiment's config sections: both configs validate and build the library's settings."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from rewardcond.distributed import plan_batches
from rewardcond.methods import get_method
from rewardcond.rounds import OnlineSettings
from rewardcond.summaries import GenerateSettings
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


@pytest.mark.parametrize(
    ("overlays", "base_model"),
    [
        ((), "gpt2"),
        (("demo.yaml",), "tiny-gpt2"),
        (("demo.yaml", "smollm.yaml"), "smollm2-135m"),
        (("demo.yaml", "rounds.yaml"), "tiny-gpt2"),
    ],
    ids=["real", "demo", "smollm", "rounds"],
)
def test_config_sections_build_every_settings_object(overlays, base_model):
    config = load("config.yaml")
    for name in overlays:
        config = merged(config, load(name))
    validate(config, schema=SCHEMA)
    for method in config["methods"]:
        get_method(method, config.get("method_options", {}).get(method))
    TrainsetSettings(**{k: v for k, v in config["trainset"].items() if k != "targets"})
    not_settings = (
        "overrides",
        "base_model",
        "from_sft",
        "rounds",
        "online",
        "seeds",
        "pool_percents",
    )
    train = {k: v for k, v in config["train"].items() if k not in not_settings}
    online = {k: v for k, v in config["train"]["online"].items() if k not in ("steps", "on_empty")}
    OnlineSettings(**online)  # as common.smk's online_settings passes it
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
    assert config["train"]["base_model"] == base_model
    assert config["train"]["base_model"] in config["base_models"]


def test_smollm_config_changes_only_the_policy_side_of_the_demo():
    demo = merged(load("config.yaml"), load("demo.yaml"))
    smollm = merged(demo, load("smollm.yaml"))
    assert smollm["run"] == "smollm"
    assert smollm["base_models"]["smollm2-135m"]["source"] == "package"
    # Same world and the same tiny reward model as the demo, so the two runs' tables compare.
    for section in ("data", "synthetic", "prompt", "reward_model", "seed", "generate"):
        assert smollm[section] == demo[section]
    assert smollm["methods"] == ["scalar", "sft", "tokens", "text", "dpo", "bon4"]
    assert smollm["trainset"]["targets"] == {
        "quantiles": [0.05, 0.25, 0.5, 0.75, 0.95],
        "beyond_max_sd": [1],
    }

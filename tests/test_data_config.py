"""The data and synthetic config sections: schema defaults, both configs, and the code agree."""

from dataclasses import asdict
from pathlib import Path

import yaml
from snakemake.utils import validate

from rewardcond.data.synthetic import WorldConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def load(name):
    return yaml.safe_load((ROOT / "workflow/config" / name).read_text())


def test_real_config_lists_the_openai_files():
    config = load("config.yaml")
    validate(config, schema=SCHEMA)
    data = config["data"]
    assert data["source"] == "openai"
    assert data["base_url"] == "https://openaipublic.blob.core.windows.net/summarize-from-feedback"
    batches = [f"dataset/comparisons/batch{i}.json" for i in [*range(3, 21), 22]]
    assert data["files"] == [
        *batches,
        "dataset/comparisons/edit_b2_eval_test.json",
        "datasets/tldr_3_filtered/train.jsonl",
        "datasets/tldr_3_filtered/valid.jsonl",
        "datasets/tldr_3_filtered/test.jsonl",
    ]
    assert (data["include_cnndm"], data["on_bad_record"]) == (False, "error")
    # the schema fills the synthetic section the real config leaves out with the world's defaults
    assert config["synthetic"] == asdict(WorldConfig())


def test_demo_config_is_the_default_synthetic_world():
    config = load("config.yaml")
    demo = load("demo.yaml")
    config["data"] |= demo["data"]
    config["synthetic"] = demo["synthetic"]
    validate(config, schema=SCHEMA)
    assert config["data"]["source"] == "synthetic"
    assert demo["synthetic"] == asdict(WorldConfig())

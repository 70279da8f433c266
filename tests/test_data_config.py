"""The data and synthetic config sections: schema defaults, both configs, and the code agree."""

from dataclasses import asdict
from pathlib import Path

import yaml
from snakemake.utils import validate

from rewardcond.data.synthetic import WorldConfig
from rewardcond.reward_models.inputs import check_cnndm_template

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


def test_real_config_verifies_openai_files_by_their_digests():
    """sha256 of byte-exact copies of OpenAI's files (batch18's also appears, for the same URL,
    in an unrelated public project's data manifest); download refuses a file that differs."""
    data = load("config.yaml")["data"]
    assert data["sha256"] == {
        "dataset/comparisons/batch13.json":
            "e4f4de3ad8763b801c4b45ff277e1ead75e9c4105f1b0837793c4b51477ec122",
        "dataset/comparisons/batch18.json":
            "5008e223e287b4c38e434e270cf77301993adba70e1f87362f35fb928f83863a",
        "dataset/comparisons/edit_b2_eval_test.json":
            "6fa83abe0e2ecbae78644962af03c91bbf896db8ecaaf3ab672b8283a96c16c6",
    }  # fmt: skip
    assert set(data["sha256"]) <= set(data["files"])  # download refuses digests of other files


def test_cnndm_template_is_the_papers_and_valid():
    config = load("config.yaml")
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    template = config["prompt"]["cnndm_template"]
    assert template == "Article:\n\n{article}\n\nTL;DR:"
    assert schema["properties"]["prompt"]["properties"]["cnndm_template"]["default"] == template
    assert check_cnndm_template(template) == template


def test_demo_config_is_the_default_synthetic_world():
    config = load("config.yaml")
    demo = load("demo.yaml")
    config["data"] |= demo["data"]
    config["synthetic"] = demo["synthetic"]
    validate(config, schema=SCHEMA)
    assert config["data"]["source"] == "synthetic"
    assert demo["synthetic"] == asdict(WorldConfig())


def dry_run_download(tmp_path, data):
    """`snakemake -n -p` of the download rule with `data` layered over the real config."""
    import subprocess
    import sys

    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump({"data": data}))
    command = [sys.executable, "-m", "snakemake", "data/raw/openai/manifest.json", "-n"]
    command += ["--cores", "1", "--forceall", "--configfile", "workflow/config/config.yaml"]
    command += [str(tmp_path / "overlay.yaml")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_an_overlay_that_trims_the_files_keeps_only_their_digests(tmp_path):
    """An overlay cannot remove the default config's `data.sha256` keys (configs merge deeply):
    the download gets the digests of the files it fetches, and a typo in a name is an error."""
    files = ["dataset/comparisons/batch3.json", "datasets/tldr_3_filtered/train.jsonl"]
    code, output = dry_run_download(tmp_path, {"files": files})
    assert code == 0, output[-3000:]
    code, output = dry_run_download(
        tmp_path, {"sha256": {"dataset/comparisons/batch99.json": "0" * 64}}
    )
    assert code != 0
    assert (
        "data.sha256 names files that are neither in data.files, data.cnndm_files nor OpenAI's "
        "files as the schema lists them: ['dataset/comparisons/batch99.json']"
    ) in output

"""The workflow's declared software stays in step with the package's."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_mirrors_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "workflow/envs/rewardcond.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    expected = project["dependencies"] + project["optional-dependencies"]["gguf"]
    assert sorted(pip_section) == sorted(expected)

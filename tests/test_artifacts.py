import json

import pandas as pd
import pytest

from rewardcond.artifacts import (
    atomic_path,
    build_manifest,
    config_hash,
    sha256_file,
    write_json,
    write_table,
)


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_previous_version_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("complete")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "complete"


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    with pytest.raises(ValueError), atomic_path(target, is_dir=True) as tmp:
        (tmp / "b.json").write_text("{}")
        raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_write_table_and_manifest(tmp_path):
    frame = pd.DataFrame({"method": ["scalar", "sft"], "x": [0.5, 0.25]})
    write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", title="T")
    assert pd.read_csv(tmp_path / "t.csv").equals(frame)
    md = (tmp_path / "t.md").read_text()
    assert md.startswith("# T\n") and "| scalar" in md and "0.2500" in md
    write_json(tmp_path / "m.json", {"a": 1})
    manifest = build_manifest(params={"lr": 1e-3}, seed=7, inputs=[tmp_path / "t.csv"])
    assert manifest["inputs"][str(tmp_path / "t.csv")] == sha256_file(tmp_path / "t.csv")
    assert manifest["config_hash"] == config_hash({"lr": 1e-3}) != config_hash({"lr": 2e-3})
    assert manifest["seed"] == 7 and manifest["packages"]["torch"]
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_atomic_files_get_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json(tmp_path / "atomic.json", {})
    assert (tmp_path / "atomic.json").stat().st_mode == plain.stat().st_mode

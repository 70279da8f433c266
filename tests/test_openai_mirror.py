"""The rehearsal's mirror (tests/openai_mirror.py) writes OpenAI's layout with the quirks the real
files have, the records without `info.id` and the lone surrogate included."""

import json
from pathlib import Path

import openai_mirror
import yaml
from openai_mirror import EDIT_FILE, VALID_ONLY, build_mirror

ROOT = Path(__file__).resolve().parents[1]
FILES = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())["data"]["files"]


def records(mirror, name):
    return [json.loads(line) for line in mirror.files[name].decode().splitlines()]


def comparison_records(mirror):
    names = [name for name in FILES if name.startswith(openai_mirror.COMPARISONS)]
    return [record for name in names for record in records(mirror, name)]


def test_every_default_file_in_the_real_layout_with_the_known_quirks():
    mirror = build_mirror(FILES)
    assert list(mirror.files) == FILES
    all_records = comparison_records(mirror)
    assert sum(mirror.comparisons.values()) == len(all_records) > 100
    assert all(set(r) <= {"info", "summaries", "choice", "worker", "batch", "split", "extra"}
               for r in all_records)  # fmt: skip
    assert all(r["summaries"][0]["text"].startswith(" ") for r in all_records)
    assert {r["extra"]["confidence"] for r in all_records if r.get("extra")} >= {None, 1}
    assert any(r.get("extra", "missing") is None for r in all_records)
    assert any("extra" not in r for r in all_records)
    assert any(s["note"] for r in all_records for s in r["summaries"])
    policies = {s["policy"] for r in all_records for s in r["summaries"]}
    assert {"ref", openai_mirror.EDITOR_POLICY} <= policies
    for name in VALID_ONLY:
        assert {r["split"] for r in records(mirror, name)} <= {"valid1", "valid2"}
    pairs = {}
    for r in all_records:
        key = (r["info"].get("id"), tuple(s["text"] for s in r["summaries"]))
        pairs.setdefault(key, set()).add(r["worker"])
    assert any(len(workers) > 1 for workers in pairs.values())  # judged by several workers
    batches = {}
    for r in all_records:
        batches.setdefault(r["info"].get("id"), set()).add(r["batch"])
    assert any(len(b) > 1 for b in batches.values())  # a post in several batches
    assert max(len(r["info"]["post"].split()) for r in all_records) > 4000
    tldr_ids = {r["id"] for n in FILES if n.endswith(".jsonl") for r in records(mirror, n)}
    assert {r["info"]["id"] for r in all_records if "id" in r["info"]} - tldr_ids  # not in tldr


def test_missing_ids_and_lone_surrogates_are_written():
    mirror = build_mirror(FILES)
    edits = records(mirror, EDIT_FILE)
    assert len(edits) == 5
    assert not any("id" in r["info"] for r in edits)
    raw = b"".join(data for name, data in mirror.files.items() if name != EDIT_FILE)
    assert raw.count(b"\\ud83d") == 1

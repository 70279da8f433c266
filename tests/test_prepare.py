"""Prepare: raw files in OpenAI's format -> validated Parquet tables and a report."""

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from rewardcond.artifacts import sha256_file
from rewardcond.data.prepare import (
    COMPARISON_COLUMNS,
    COMPLETION_COLUMNS,
    POST_COLUMNS,
    BadRecordError,
    completion_id,
    prepare,
)
from rewardcond.data.synthetic import (
    GoldReward,
    WorldConfig,
    bayes_optimal_accuracy,
    generate_world,
)

COMPARISON = {
    "info": {
        "id": "t3_2vwp1w",
        "post": "I had a car accident on friday.\n\nCan I get an investigation going?",
        "title": "Anybody with knowledge of the Dutch law around ? car accident questions.",
        "subreddit": "legaladvice",
    },
    "summaries": [
        {"text": " car accident caused me damage.", "policy": "sup4_ppo_rm3_kl10", "note": None},
        {"text": " other party was speeding, how do I prove it?", "policy": "ref", "note": "ok"},
    ],
    "choice": 1,
    "worker": "ikNmucwunMnYJCQpnq6ZYb57OW7NiD",
    "batch": "batch9",
    "split": "train",
    "extra": {"confidence": 8},
}
TLDR_POST = {
    "id": "t3_2vwp1w",
    "subreddit": "legaladvice",
    "title": "Anybody with knowledge of the Dutch law around ? car accident questions.",
    "post": "I had a car accident on friday.\n\nCan I get an investigation going?",
    "summary": "other party was speeding, how do I prove it?",
}


def comparison(**changes):
    """A copy of the README's example comparison with dotted-path `changes` (None deletes)."""
    record = copy.deepcopy(COMPARISON)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = record
        for parent in parents:
            target = target[int(parent)] if parent.isdigit() else target[parent]
        if value is None:
            del target[key]
        else:
            target[key] = value
    return record


def write_raw(root, files, *, source="openai"):
    """Write `{relative name: list of records or raw lines}` and a manifest like download's."""
    entries = {}
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
        entries[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    (root / "manifest.json").write_text(json.dumps({"source": source, "files": entries}))
    return root


BATCH = "dataset/comparisons/batch9.json"


def test_real_format_tables_follow_the_contract(tmp_path):
    other = comparison(**{"info.id": "t3_other", "split": "valid2", "extra": None})
    raw = write_raw(
        tmp_path / "raw",
        {
            "datasets/tldr_3_filtered/train.jsonl": [TLDR_POST],
            BATCH: [COMPARISON, comparison(worker="w2", choice=0), other],
        },
    )
    report = prepare(raw, tmp_path / "out")
    posts = pd.read_parquet(tmp_path / "out/posts.parquet")
    comparisons = pd.read_parquet(tmp_path / "out/comparisons.parquet")
    completions = pd.read_parquet(tmp_path / "out/completions.parquet")
    assert list(posts.columns) == POST_COLUMNS
    assert list(comparisons.columns) == COMPARISON_COLUMNS
    assert list(completions.columns) == COMPLETION_COLUMNS
    assert posts.iloc[0].to_dict() == {
        "post_id": "t3_2vwp1w",
        "subreddit": "legaladvice",
        "title": TLDR_POST["title"],
        "post": TLDR_POST["post"],
        "reference": " other party was speeding, how do I prove it?",
        "split": "train",
        "comparison_split": "train",
    }
    # a post seen only in comparisons has no reference and no tldr_3_filtered split (null)
    assert posts["post_id"].tolist() == ["t3_2vwp1w", "t3_other"]
    assert posts.iloc[1][["reference", "split"]].isna().all()
    assert posts.loc[1, "comparison_split"] == "valid2"
    assert comparisons["choice"].tolist() == [1, 0, 1]
    assert comparisons["choice"].dtype == np.int64
    assert comparisons["worker"].tolist() == [COMPARISON["worker"], "w2", COMPARISON["worker"]]
    np.testing.assert_array_equal(comparisons["confidence"], [8.0, 8.0, np.nan])
    assert comparisons.loc[0, ["policy_0", "policy_1"]].tolist() == ["sup4_ppo_rm3_kl10", "ref"]
    # unique (post, policy, text): two summaries of each post plus the one reference
    assert len(completions) == 5
    assert completions["source"].tolist() == ["comparison", "comparison", "comparison",
                                              "comparison", "reference"]  # fmt: skip
    reference = completions.iloc[-1]
    assert (reference["policy"], reference["split"]) == ("reference", "train")
    assert reference["completion_id"] == completion_id("t3_2vwp1w", "reference", reference["text"])
    assert completions["completion_id"].str.fullmatch("[0-9a-f]{16}").all()
    assert completions["text"].str.startswith(" ").all()
    assert report["files"] == [
        {"file": "datasets/tldr_3_filtered/train.jsonl", "kind": "posts", "lines": 1,
         "records": 1, "skipped": 0, "skipped_by_reason": {}},
        {"file": BATCH, "kind": "comparisons", "lines": 3, "records": 3, "skipped": 0,
         "skipped_by_reason": {}},
    ]  # fmt: skip
    assert (report["posts"], report["comparisons"], report["completions"]) == (2, 3, 5)
    assert json.loads((tmp_path / "out/report.json").read_text()) == report
    markdown = (tmp_path / "out/report.md").read_text()
    row = r"\| dataset/comparisons/batch9.json +\| comparisons +\| +3 \| +3 \| +0 \|"
    assert re.search(row, markdown)


BAD_LINES = {
    "malformed_json": ('{"info": {"id": "t3_x"', None, "malformed JSON"),
    "missing_field": (comparison(**{"info.title": None}), "info.title", "missing"),
    "bad_choice": (comparison(choice=2), "choice", "expected 0 or 1, got 2"),
    "empty_summary": (comparison(**{"summaries.1.text": "  \n"}), "summaries[1].text", "empty"),
    "duplicate_comparison": (COMPARISON, "summaries", "already compared these two summaries"),
    "bad_split": (comparison(split="test"), "split", "expected one of"),
    "wrong_type": (comparison(choice="1"), "choice", "expected int, got str"),
}


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_bad_record_is_an_error_naming_file_line_and_field(tmp_path, reason):
    line, field, message = BAD_LINES[reason]
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON, line]})
    with pytest.raises(BadRecordError) as error:
        prepare(raw, tmp_path / "out")
    text = str(error.value)
    where = f"{BATCH}:2: field {field!r}" if field else f"{BATCH}:2:"
    assert text.startswith(where)
    assert message in text and f"[{reason}]" in text and "on_bad_record: skip" in text
    assert not (tmp_path / "out").exists()


def test_skip_counts_every_bad_record_and_keeps_the_good(tmp_path):
    lines = [COMPARISON] + [BAD_LINES[reason][0] for reason in sorted(BAD_LINES)]
    raw = write_raw(
        tmp_path / "raw",
        {
            "datasets/tldr_3_filtered/train.jsonl": [TLDR_POST, {**TLDR_POST, "summary": ""},
                                                     TLDR_POST],
            BATCH: lines,
        },
    )  # fmt: skip
    report = prepare(raw, tmp_path / "out", on_bad_record="skip")
    tldr, batch = report["files"]
    assert (tldr["lines"], tldr["records"], tldr["skipped"]) == (3, 1, 2)
    assert tldr["skipped_by_reason"] == {"empty_summary": 1, "duplicate_post": 1}
    assert (batch["lines"], batch["records"], batch["skipped"]) == (8, 1, 7)
    assert batch["skipped_by_reason"] == {reason: 1 for reason in BAD_LINES}
    assert len(report["skipped_examples"]) == 9
    assert report["skipped_examples"][2] == {
        "file": BATCH, "line": 2, "field": "choice", "reason": "bad_choice",
        "message": "expected 0 or 1, got 2",
    }  # fmt: skip
    assert len(pd.read_parquet(tmp_path / "out/comparisons.parquet")) == 1
    markdown = (tmp_path / "out/report.md").read_text()
    assert "- bad_choice: 1" in markdown and "- duplicate_post: 1" in markdown


def test_same_pair_by_another_worker_is_not_a_duplicate(tmp_path):
    swapped = comparison(worker="someone else", choice=0)
    swapped["summaries"].reverse()
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON, swapped]})
    assert prepare(raw, tmp_path / "out")["comparisons"] == 2
    same_worker_swapped = comparison(choice=0)
    same_worker_swapped["summaries"].reverse()
    raw = write_raw(tmp_path / "raw2", {BATCH: [COMPARISON, same_worker_swapped]})
    with pytest.raises(BadRecordError, match="duplicate_comparison"):
        prepare(raw, tmp_path / "out2")


def test_post_compared_in_several_splits_counts_as_the_most_held_out(tmp_path):
    raw = write_raw(
        tmp_path / "raw",
        {BATCH: [comparison(split="valid1"), comparison(split="train", worker="b")]},
    )
    report = prepare(raw, tmp_path / "out")
    posts = pd.read_parquet(tmp_path / "out/posts.parquet")
    assert posts["comparison_split"].tolist() == ["valid1"]
    assert report["posts_in_several_comparison_splits"] == 1


def test_cnndm_articles_use_site_and_article(tmp_path):
    article = comparison(**{"info.post": None, "info.subreddit": None})
    article["info"] |= {"site": "dailymail", "article": "Newcastle lost 2-0."}
    raw = write_raw(tmp_path / "raw", {"dataset/comparisons/cnndm0.json": [article]})
    prepare(raw, tmp_path / "out")
    post = pd.read_parquet(tmp_path / "out/posts.parquet").iloc[0]
    assert (post["subreddit"], post["post"]) == ("dailymail", "Newcastle lost 2-0.")


def test_raw_file_that_differs_from_its_manifest_is_refused(tmp_path):
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON]})
    (raw / BATCH).write_text(json.dumps(comparison(choice=0)) + "\n")
    with pytest.raises(ValueError, match="sha256 differs from the manifest"):
        prepare(raw, tmp_path / "out")
    (raw / BATCH).unlink()
    with pytest.raises(FileNotFoundError, match="listed in .*manifest.json but missing"):
        prepare(raw, tmp_path / "out")


def test_unknown_on_bad_record_is_refused(tmp_path):
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON]})
    with pytest.raises(ValueError, match="on_bad_record='drop'; expected one of"):
        prepare(raw, tmp_path / "out", on_bad_record="drop")


def test_synthetic_world_reports_bayes_optimal_accuracy(tmp_path):
    generate_world(tmp_path / "raw", WorldConfig(n_posts=50, comparisons_per_post=4), seed=3)
    report = prepare(tmp_path / "raw", tmp_path / "out")
    assert report["source"] == "synthetic"
    assert (report["posts"], report["comparisons"]) == (50, 200)
    assert report["posts_by_split"] == {"test": 5, "train": 40, "valid": 5}
    assert report["comparisons_by_split"] == {"train": 160, "valid1": 20, "valid2": 20}
    comparisons = pd.read_parquet(tmp_path / "out/comparisons.parquet")
    gold = GoldReward.load(tmp_path / "raw/gold.jsonl")
    ids = comparisons["post_id"].tolist()
    g0 = gold.score(ids, comparisons["summary_0"].tolist())
    g1 = gold.score(ids, comparisons["summary_1"].tolist())
    assert report["bayes_optimal_accuracy"]["all"] == pytest.approx(
        bayes_optimal_accuracy(g0, g1, 0.1)
    )
    assert set(report["bayes_optimal_accuracy"]) == {"all", "train", "valid1", "valid2"}
    assert "## Synthetic world" in (tmp_path / "out/report.md").read_text()
    posts = pd.read_parquet(tmp_path / "out/posts.parquet")
    assert posts["reference"].notna().all() and posts["split"].notna().all()

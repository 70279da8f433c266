"""Prepare: raw files in OpenAI's format -> validated Parquet tables and a report."""

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from real_layout import (
    ARTICLE_INFO,
    COMPARISON,
    INVALID_LINES,
    LONG_POST,
    NULL,
    TLDR_POST,
    cnndm_files,
    comparison,
    quirk_files,
    with_invalid_lines,
    write_raw,
)

from rewardcond.data.prepare import (
    COMPARISON_COLUMNS,
    COMPLETION_COLUMNS,
    POST_COLUMNS,
    BadRecordError,
    completion_id,
    content_post_id,
    prepare,
)
from rewardcond.data.synthetic import (
    GoldReward,
    WorldConfig,
    bayes_optimal_accuracy,
    generate_world,
)

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
        "domain": "tldr",
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
         "records": 1, "skipped": 0, "skipped_by_reason": {}, "id_from_tldr_3_filtered": 0,
         "id_from_content_hash": 0, "repaired_lone_surrogates": 0},
        {"file": BATCH, "kind": "comparisons", "lines": 3, "records": 3, "skipped": 0,
         "skipped_by_reason": {}, "id_from_tldr_3_filtered": 0, "id_from_content_hash": 0,
             "repaired_lone_surrogates": 0},
    ]  # fmt: skip
    assert (comparisons["domain"] == "tldr").all() and (completions["domain"] == "tldr").all()
    assert (report["posts"], report["comparisons"], report["completions"]) == (2, 3, 5)
    assert json.loads((tmp_path / "out/report.json").read_text()) == report
    markdown = (tmp_path / "out/report.md").read_text()
    row = r"\| dataset/comparisons/batch9.json +\| comparisons +\| +3 \| +3 \| +0 \|"
    assert re.search(row, markdown)


BAD_LINES = {  # case: (line, field named in the error, message part, reason)
    "malformed_json": ('{"info": {"id": "t3_x"', None, "malformed JSON", "malformed_json"),
    "missing_field": (comparison(**{"info.title": None}), "info.title", "missing", "missing_field"),
    "bad_choice": (comparison(choice=2), "choice", "expected 0 or 1, got 2", "bad_choice"),
    "empty_summary": (
        comparison(**{"summaries.1.text": "  \n"}), "summaries[1].text", "empty", "empty_summary"
    ),
    "duplicate_comparison": (
        COMPARISON, "summaries", "already compared these two summaries", "duplicate_comparison"
    ),
    "bad_split": (comparison(split="test"), "split", "expected one of", "bad_split"),
    "choice_type": (comparison(choice="1"), "choice", "expected int, got str", "wrong_type"),
    "confidence_type": (
        comparison(**{"extra.confidence": "high"}), "extra.confidence", "got str", "wrong_type"
    ),
    "lone_surrogate": (
        comparison(**{"summaries.0.policy": "sup4\ud800"}), "summaries[0].policy",
        "lone surrogate U+D800 at character 5", "lone_surrogate",
    ),
    "invalid_utf8": (b'{"info": "caf\xc3"}', None, "not UTF-8 (byte 0xc3 at byte 14)",
                     "invalid_utf8"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_is_an_error_naming_file_line_and_field(tmp_path, case):
    line, field, message, reason = BAD_LINES[case]
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON, line]})
    with pytest.raises(BadRecordError) as error:
        prepare(raw, tmp_path / "out", lone_surrogates="bad_record")
    text = str(error.value)
    where = f"{BATCH}:2: field {field!r}: " if field else f"{BATCH}:2: "
    assert text.startswith(where)
    assert message in text and f"[{reason}]" in text and "on_bad_record: skip" in text
    assert not (tmp_path / "out").exists()


def test_skip_counts_every_bad_record_and_keeps_the_good(tmp_path):
    lines = [COMPARISON] + [BAD_LINES[case][0] for case in sorted(BAD_LINES)]
    raw = write_raw(
        tmp_path / "raw",
        {
            "datasets/tldr_3_filtered/train.jsonl": [TLDR_POST, {**TLDR_POST, "summary": ""},
                                                     TLDR_POST],
            BATCH: lines,
        },
    )  # fmt: skip
    report = prepare(raw, tmp_path / "out", on_bad_record="skip", lone_surrogates="bad_record")
    tldr, batch = report["files"]
    assert (tldr["lines"], tldr["records"], tldr["skipped"]) == (3, 1, 2)
    assert tldr["skipped_by_reason"] == {"empty_summary": 1, "duplicate_post": 1}
    assert (batch["lines"], batch["records"], batch["skipped"]) == (11, 1, 10)
    assert batch["skipped_by_reason"] == {
        "bad_choice": 1, "bad_split": 1, "wrong_type": 2, "duplicate_comparison": 1,
        "empty_summary": 1, "malformed_json": 1, "missing_field": 1, "lone_surrogate": 1,
        "invalid_utf8": 1,
    }  # fmt: skip
    assert len(report["skipped_examples"]) == 12
    assert report["skipped_examples"][2] == {
        "file": BATCH, "line": 2, "field": "choice", "reason": "bad_choice",
        "message": "expected 0 or 1, got 2",
    }  # fmt: skip
    assert len(pd.read_parquet(tmp_path / "out/comparisons.parquet")) == 1
    markdown = (tmp_path / "out/report.md").read_text()
    assert "- wrong_type: 2" in markdown and "- duplicate_post: 1" in markdown


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
    assert post["domain"] == "cnndm"


def test_cnndm_records_carry_their_domain_in_every_table(tmp_path):
    """A CNN/DM record inside a TL;DR file, and a CNN/DM file (include_cnndm), stay apart from
    TL;DR rows by the `domain` column of all three tables."""
    raw = write_raw(
        tmp_path / "raw",
        {BATCH: [COMPARISON, comparison(info=ARTICLE_INFO, worker="w2")], **cnndm_files()},
    )
    report = prepare(raw, tmp_path / "out")
    posts = pd.read_parquet(tmp_path / "out/posts.parquet").set_index("post_id")
    comparisons = pd.read_parquet(tmp_path / "out/comparisons.parquet")
    completions = pd.read_parquet(tmp_path / "out/completions.parquet")
    assert posts["domain"].to_dict() == {
        "t3_2vwp1w": "tldr",
        ARTICLE_INFO["id"]: "cnndm",
        "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d": "cnndm",
    }
    assert posts.loc[ARTICLE_INFO["id"], ["subreddit", "title", "post"]].tolist() == [
        "dailymail", ARTICLE_INFO["title"], ARTICLE_INFO["article"]
    ]  # fmt: skip
    assert comparisons["domain"].tolist() == ["tldr", "cnndm", "cnndm", "cnndm"]
    assert (completions["domain"] == completions["post_id"].map(posts["domain"])).all()
    assert completions["domain"].value_counts().to_dict() == {"cnndm": 4, "tldr": 2}
    assert report["posts_by_domain"] == {"cnndm": 2, "tldr": 1}
    assert report["comparisons_by_domain"] == {"cnndm": 3, "tldr": 1}
    assert report["completions_by_domain"] == {"cnndm": 4, "tldr": 2}
    markdown = (tmp_path / "out/report.md").read_text()
    assert "by domain {'cnndm': 3, 'tldr': 1}" in markdown


EDIT_POST = {  # TLDR_POST as a record without `info.id` gives it: whitespace differs
    "post": "  I had a car accident   on friday. Can I get\tan investigation going?\n",
    "title": TLDR_POST["title"] + " ",
    "subreddit": "legaladvice",
}


def test_record_without_id_gets_the_tldr_3_filtered_id_else_a_content_id(tmp_path):
    other = {"post": "My cat sleeps all day.", "title": "Lazy cat", "subreddit": "cats"}
    other_spaced = {**other, "post": "My cat  sleeps all day.\n"}
    capitalised = {**EDIT_POST, "title": TLDR_POST["title"].upper()}  # case counts
    raw = write_raw(
        tmp_path / "raw",
        {
            "datasets/tldr_3_filtered/train.jsonl": [TLDR_POST],
            "dataset/comparisons/edit_b2_eval_test.json": [
                comparison(info=EDIT_POST, split="valid2"),
                comparison(info={**EDIT_POST, "id": None}, worker="w2"),
                comparison(info=other),
                comparison(info=other_spaced, worker="w2"),
                comparison(info={**capitalised, "id": ""}),
            ],
        },
    )
    report = prepare(raw, tmp_path / "out")
    comparisons = pd.read_parquet(tmp_path / "out/comparisons.parquet")
    ids = comparisons["post_id"].tolist()
    other_id = content_post_id(("cats", "Lazy cat", "My cat sleeps all day.", "tldr"))
    capitalised_id = content_post_id(
        (capitalised["subreddit"], capitalised["title"], capitalised["post"], "tldr")
    )
    assert ids == ["t3_2vwp1w", "t3_2vwp1w", other_id, other_id, capitalised_id]
    assert re.fullmatch("sha256:[0-9a-f]{16}", other_id) and other_id != capitalised_id
    posts = pd.read_parquet(tmp_path / "out/posts.parquet").set_index("post_id")
    assert posts.loc["t3_2vwp1w", "post"] == TLDR_POST["post"]  # tldr_3_filtered's text kept
    assert posts.loc["t3_2vwp1w", "comparison_split"] == "valid2"
    assert posts.loc[other_id, "post"] == "My cat sleeps all day."
    assert report["files"][1]["id_from_tldr_3_filtered"] == 2
    assert report["files"][1]["id_from_content_hash"] == 3
    assert report["comparisons_without_id"] == {"tldr_3_filtered": 2, "content_hash": 3}
    markdown = (tmp_path / "out/report.md").read_text()
    assert "given the id of the same tldr_3_filtered post: 2; given a content id" in markdown
    assert "(`sha256:...`): 3" in markdown


def test_content_post_id_is_stable_and_apart_from_reddit_and_cnndm_ids():
    spaced = content_post_id(("s", " t", "a  b\n\nc ", "tldr"))
    assert spaced == content_post_id(("s", "t", "a b c", "tldr"))
    digest = hashlib.sha256(b"tldr\x1fs\x1ft\x1fa b c").hexdigest()
    assert spaced == "sha256:" + digest[:16]
    assert spaced != content_post_id(("s", "t", "a b c", "cnndm"))
    assert spaced != content_post_id(("s", "t", "A b c", "tldr"))
    # Reddit ids are t3_ + base36 and CNN/DM ids hex: neither holds a ':'
    assert not re.fullmatch("[0-9a-z_]+", spaced)


TEXT_FIELDS = [  # (file, record, field named in the error)
    (BATCH, comparison(**{"info.post": "a \ud83d b"}), "info.post"),
    (BATCH, comparison(**{"info.title": "\udc00"}), "info.title"),
    (BATCH, comparison(**{"info.subreddit": "x\ud800"}), "info.subreddit"),
    (BATCH, comparison(**{"info.id": "t3_\udbff"}), "info.id"),
    (BATCH, comparison(**{"info.id": None, "info.post": "no id \ud83d"}), "info.post"),
    (BATCH, comparison(**{"summaries.0.text": " \ud83d"}), "summaries[0].text"),
    (BATCH, comparison(**{"summaries.1.text": " ok \ude00 ok"}), "summaries[1].text"),
    (BATCH, comparison(**{"summaries.1.policy": "\ud800ref"}), "summaries[1].policy"),
    (BATCH, comparison(worker="w\udfff"), "worker"),
    (BATCH, comparison(batch="batch\ud800"), "batch"),
    (BATCH, comparison(info={**ARTICLE_INFO, "article": "\ud83d"}), "info.article"),
    (BATCH, comparison(info={**ARTICLE_INFO, "site": "\ud83d"}), "info.site"),
    ("datasets/tldr_3_filtered/train.jsonl", {**TLDR_POST, "post": "\ud83d"}, "post"),
    ("datasets/tldr_3_filtered/train.jsonl", {**TLDR_POST, "summary": "a\ud83d"}, "summary"),
    ("datasets/tldr_3_filtered/train.jsonl", {**TLDR_POST, "subreddit": "\udc00"}, "subreddit"),
    ("datasets/tldr_3_filtered/train.jsonl", {**TLDR_POST, "id": "t3_\udc00"}, "id"),
]


@pytest.mark.parametrize("case", range(len(TEXT_FIELDS)))
def test_lone_surrogate_in_any_stored_text_is_refused_by_file_line_and_field(tmp_path, case):
    """JSON allows `\\ud83d` (half an emoji); UTF-8 and Parquet do not. Every string that reaches
    a table is checked: an error naming file, line and field, or a counted skip."""
    name, record, field = TEXT_FIELDS[case]
    good = COMPARISON if name == BATCH else {**TLDR_POST, "id": "t3_good"}
    raw = write_raw(tmp_path / "raw", {name: [good, record]})
    with pytest.raises(BadRecordError) as error:
        prepare(raw, tmp_path / "out", lone_surrogates="bad_record")
    assert str(error.value).startswith(f"{name}:2: field {field!r}: lone surrogate U+")
    assert "UTF-8 and Parquet cannot store it) [lone_surrogate]" in str(error.value)
    report = prepare(raw, tmp_path / "skip", on_bad_record="skip", lone_surrogates="bad_record")
    assert report["files"][0]["skipped_by_reason"] == {"lone_surrogate": 1}
    assert report["files"][0]["records"] == 1
    assert report["skipped_examples"][0]["field"] == field


@pytest.mark.parametrize("case", range(len(TEXT_FIELDS)))
def test_lone_surrogate_is_replaced_and_the_record_kept_by_default(tmp_path, case):
    """The default (`data.lone_surrogates: replace`): U+FFFD takes the surrogate's place, the
    record is kept, and the report counts it with file, line and field."""
    name, record, field = TEXT_FIELDS[case]
    # first, so that its post text is the one kept; the good one is another worker's judgement
    good = comparison(worker="another") if name == BATCH else {**TLDR_POST, "id": "t3_good"}
    raw = write_raw(tmp_path / "raw", {name: [record, good]})
    report = prepare(raw, tmp_path / "out")
    entry = report["files"][0]
    assert (entry["lines"], entry["records"], entry["skipped"]) == (2, 2, 0)
    assert entry["repaired_lone_surrogates"] == 1
    example = report["repaired_examples"][0]
    assert (example["file"], example["line"]) == (name, 1)
    assert example["fields"] == field
    tables = [pd.read_parquet(tmp_path / f"out/{t}.parquet") for t in ("posts", "comparisons")]
    stored = "".join(str(v) for table in tables for v in table.to_numpy().ravel())
    assert "\ufffd" in stored
    assert (
        "Kept records with lone surrogates replaced by U+FFFD"
        in (tmp_path / "out/report.md").read_text()
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": NULL},
        {"extra": None},
        {"extra.confidence": NULL},
        {"extra.confidence": None},
        {"summaries.0.note": None, "summaries.1.note": NULL},
        {"summaries.1.note": "half an emoji \ud83d, in a field no table keeps"},
    ],
    ids=["extra_null", "extra_missing", "confidence_null", "confidence_missing",
         "note_missing_or_null", "note_with_lone_surrogate"],
)  # fmt: skip
def test_optional_fields_missing_or_null_are_kept(tmp_path, changes):
    raw = write_raw(tmp_path / "raw", {BATCH: [comparison(**changes)]})
    report = prepare(raw, tmp_path / "out")
    assert (report["comparisons"], report["files"][0]["skipped"]) == (1, 0)
    confidence = pd.read_parquet(tmp_path / "out/comparisons.parquet")["confidence"].iloc[0]
    has_confidence = not any(key.startswith("extra") for key in changes)
    assert confidence == 8.0 if has_confidence else np.isnan(confidence)


def test_policies_and_workers_are_kept_as_the_data_names_them(tmp_path):
    """`ref`, a human editor, model policies; the same pair judged by three workers is three
    comparisons."""
    pair = {"summaries.0.policy": "human_editor", "summaries.1.policy": "ref"}
    raw = write_raw(
        tmp_path / "raw",
        {BATCH: [comparison(**pair), comparison(**pair, worker="w2", choice=0),
                 comparison(**pair, worker="w3"), comparison()]},
    )  # fmt: skip
    report = prepare(raw, tmp_path / "out")
    comparisons = pd.read_parquet(tmp_path / "out/comparisons.parquet")
    assert comparisons["policy_0"].tolist() == ["human_editor"] * 3 + ["sup4_ppo_rm3_kl10"]
    assert comparisons["worker"].tolist() == [
        COMPARISON["worker"],
        "w2",
        "w3",
        COMPARISON["worker"],
    ]
    assert comparisons["choice"].tolist() == [1, 0, 1, 1]
    assert report["policies"] == {"human_editor": 1, "ref": 1, "sup4_ppo_rm3_kl10": 1}


def test_post_in_several_batches_keeps_its_first_text_and_is_counted_once(tmp_path):
    edited = {**COMPARISON["info"], "post": COMPARISON["info"]["post"] + " Thanks!"}
    raw = write_raw(
        tmp_path / "raw",
        {
            "dataset/comparisons/batch13.json": [comparison(split="valid1")],
            "dataset/comparisons/batch18.json": [
                comparison(info=edited, worker="w2", split="valid2"),
                comparison(info=edited, worker="w3", split="valid2"),
            ],
        },
    )
    report = prepare(raw, tmp_path / "out")
    posts = pd.read_parquet(tmp_path / "out/posts.parquet")
    assert posts[["post_id", "post", "comparison_split"]].values.tolist() == [
        ["t3_2vwp1w", COMPARISON["info"]["post"], "valid2"]
    ]
    assert report["comparisons"] == 3
    assert report["posts_with_conflicting_text"] == 1


def test_post_longer_than_any_context_is_kept_whole(tmp_path):
    long = {**TLDR_POST, "post": LONG_POST}
    raw = write_raw(
        tmp_path / "raw",
        {"datasets/tldr_3_filtered/train.jsonl": [long],
         BATCH: [comparison(**{"info.post": LONG_POST})]},
    )  # fmt: skip
    report = prepare(raw, tmp_path / "out")
    posts = pd.read_parquet(tmp_path / "out/posts.parquet")
    assert posts["post"].tolist() == [LONG_POST] and len(LONG_POST) > 40_000
    assert (report["comparisons"], report["posts_with_conflicting_text"]) == (1, 0)


# What prepare must report for tests/real_layout.quirk_files(): per file (lines, records).
QUIRK_FILE_COUNTS = {
    "datasets/tldr_3_filtered/train.jsonl": (3, 3),
    "datasets/tldr_3_filtered/valid.jsonl": (1, 1),
    "datasets/tldr_3_filtered/test.jsonl": (1, 1),
    "dataset/comparisons/batch3.json": (9, 9),
    "dataset/comparisons/batch13.json": (3, 3),
    "dataset/comparisons/batch18.json": (3, 3),
    "dataset/comparisons/edit_b2_eval_test.json": (3, 3),
}
QUIRK_SKIPS = {  # the INVALID_LINES, per file and reason
    "datasets/tldr_3_filtered/train.jsonl": {"lone_surrogate": 1},
    "dataset/comparisons/batch3.json": {"lone_surrogate": 1},
    "dataset/comparisons/batch13.json": {"invalid_utf8": 1},
    "dataset/comparisons/edit_b2_eval_test.json": {"lone_surrogate": 1},
}


def _check_quirk_outputs(report, out):
    assert report["posts"] == 8 and report["comparisons"] == 18 and report["completions"] == 30
    assert report["posts_by_split"] == {"none": 3, "test": 1, "train": 3, "valid": 1}
    assert report["posts_by_comparison_split"] == {"train": 3, "valid2": 5}
    assert report["posts_by_domain"] == {"cnndm": 1, "tldr": 7}
    assert report["comparisons_by_split"] == {"train": 8, "valid1": 1, "valid2": 9}
    assert report["comparisons_by_domain"] == {"cnndm": 2, "tldr": 16}
    assert report["comparisons_without_id"] == {"tldr_3_filtered": 2, "content_hash": 1}
    assert report["posts_with_conflicting_text"] == 2  # the edit_b2 post, the batch13/18 post
    assert report["posts_in_several_comparison_splits"] == 2
    assert report["policies"]["human_editor"] == 3 and report["policies"]["ref"] == 11
    files = quirk_files()
    posts = pd.read_parquet(out / "posts.parquet").set_index("post_id")
    comparisons = pd.read_parquet(out / "comparisons.parquet")
    for record in files["datasets/tldr_3_filtered/train.jsonl"]:  # the long post, the emoji
        assert posts.loc[record["id"], "post"] == record["post"]
    edit_ids = comparisons.loc[comparisons["batch"] == "edit_b2", "post_id"].tolist()
    unknown = files["dataset/comparisons/edit_b2_eval_test.json"][2]["info"]
    unknown_id = content_post_id((unknown["subreddit"], unknown["title"], unknown["post"], "tldr"))
    assert edit_ids == ["t3_rent333", "t3_rent333", unknown_id]
    batch3 = comparisons[comparisons["batch"] != "batch13"].head(9)
    assert batch3["confidence"].isna().tolist() == [False, False] + [True] * 4 + [False] * 3
    assert comparisons["domain"].tolist().count("cnndm") == 2


def test_real_layout_counts_add_up_in_error_mode(tmp_path):
    """Every quirk that is valid is kept with on_bad_record: error (the default config)."""
    raw = write_raw(tmp_path / "raw", quirk_files())
    report = prepare(raw, tmp_path / "out")
    counts = {f["file"]: (f["lines"], f["records"]) for f in report["files"]}
    assert counts == QUIRK_FILE_COUNTS
    assert all(f["skipped"] == 0 for f in report["files"])
    _check_quirk_outputs(report, tmp_path / "out")


def test_real_layout_counts_add_up_in_skip_mode(tmp_path):
    """With the invalid lines too: every input line is kept or skipped under a named reason,
    per file, and the kept rows are those of error mode."""
    raw = write_raw(tmp_path / "raw", with_invalid_lines(quirk_files()))
    report = prepare(raw, tmp_path / "out", on_bad_record="skip", lone_surrogates="bad_record")
    for entry in report["files"]:
        lines, records = QUIRK_FILE_COUNTS[entry["file"]]
        skips = QUIRK_SKIPS.get(entry["file"], {})
        assert (entry["lines"], entry["records"]) == (lines + sum(skips.values()), records)
        assert entry["skipped_by_reason"] == skips
        assert entry["lines"] == entry["records"] + sum(entry["skipped_by_reason"].values())
    assert len(report["skipped_examples"]) == 4
    _check_quirk_outputs(report, tmp_path / "out")
    clean = write_raw(tmp_path / "clean", quirk_files())
    prepare(clean, tmp_path / "clean_out")
    for table in ("posts", "comparisons", "completions"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"out/{table}.parquet"),
            pd.read_parquet(tmp_path / f"clean_out/{table}.parquet"),
        )


@pytest.mark.parametrize("case", range(len(INVALID_LINES)))
def test_real_layout_invalid_line_is_an_error_naming_file_line_and_field(tmp_path, case):
    name, line, field, reason = INVALID_LINES[case]
    files = quirk_files()
    files[name] = [*files[name], line]
    raw = write_raw(tmp_path / "raw", files)
    with pytest.raises(BadRecordError) as error:
        prepare(raw, tmp_path / "out", lone_surrogates="bad_record")
    where = f"{name}:{len(files[name])}: " + (f"field {field!r}: " if field else "")
    assert str(error.value).startswith(where) and f"[{reason}]" in str(error.value)


def test_raw_file_that_differs_from_its_manifest_is_refused(tmp_path):
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON]})
    (raw / BATCH).write_text(json.dumps(comparison(choice=0)) + "\n")
    with pytest.raises(ValueError, match="sha256 differs from the manifest"):
        prepare(raw, tmp_path / "out")
    (raw / BATCH).unlink()
    with pytest.raises(FileNotFoundError, match="listed in .*manifest.json but missing"):
        prepare(raw, tmp_path / "out")


def test_raw_file_that_prepare_does_not_read_is_refused_not_ignored(tmp_path):
    axis = "dataset/axis_evals/tldr_axis_evals.json"
    raw = write_raw(tmp_path / "raw", {BATCH: [COMPARISON], axis: [COMPARISON]})
    with pytest.raises(ValueError) as error:
        prepare(raw, tmp_path / "out")
    assert str(error.value) == (
        f"{raw / 'manifest.json'}: prepare reads datasets/tldr_3_filtered/*.jsonl and "
        f"dataset/comparisons/*.json, not {[axis]}; remove them from config key data.files"
    )


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


def test_a_whole_emoji_written_as_a_surrogate_pair_is_kept_as_it_is(tmp_path):
    """`\\ud83d\\ude00` is one character (😀) once parsed: nothing to repair, nothing counted."""
    raw = write_raw(tmp_path / "raw", {BATCH: [comparison(**{"info.post": "fine \U0001f600"})]})
    text = (raw / BATCH).read_text()
    (raw / BATCH).write_text(text.replace("\U0001f600", "\\ud83d\\ude00"))
    manifest = json.loads((raw / "manifest.json").read_text())
    manifest["files"][BATCH] = {"size": (raw / BATCH).stat().st_size}
    (raw / "manifest.json").write_text(json.dumps(manifest))
    report = prepare(raw, tmp_path / "out")
    assert report["files"][0]["repaired_lone_surrogates"] == 0
    posts = pd.read_parquet(tmp_path / "out/posts.parquet")
    assert posts["post"].tolist() == ["fine \U0001f600"]

"""Parse and validate raw TL;DR feedback files into the prepared Parquet tables.

Input is a raw folder laid out like OpenAI's blob storage, with the `manifest.json` that the
download (or the synthetic generator) wrote: `dataset/comparisons/*.json` (one comparison per
line) and `datasets/tldr_3_filtered/{train,valid,test}.jsonl` (one post with its reference
summary per line). Output, under `out_dir`: `posts.parquet`, `comparisons.parquet`,
`completions.parquet`, `report.json` and `report.md` (columns: `POST_COLUMNS`,
`COMPARISON_COLUMNS`, `COMPLETION_COLUMNS`).

Every record is validated (`rewardcond.data.records`); a bad one is an error naming the file, the
line and the field, or with `on_bad_record="skip"` is skipped and counted per reason in the
report (`rewardcond.data.prepare_report`), so that for every file `lines == records + skipped`.
Summary texts are stripped and given one leading space, as completions of the prompt's "TL;DR:".

What the real files hold and is kept:
- A comparison whose `info` has no `id` (OpenAI's `edit_b2_eval_test.json`) gets the id of the
  same post in tldr_3_filtered, or else a content id `sha256:<16 hex>` (see `content_post_id`);
  the report counts both kinds.
- `extra` or `extra.confidence` missing or null (confidence NaN), `note` fields (not kept), any
  policy name (`ref`, human editors), the same pair judged by several workers (separate rows), a
  post in several batches (its first text kept; differing texts counted), posts of any length
  (later stages shorten the post body to fit a model).
- CNN/DailyMail articles (`info.article` and `info.site` instead of `info.post` and
  `info.subreddit`) are stored in the `post` and `subreddit` columns with `domain` = `cnndm`;
  every TL;DR row has `domain` = `tldr`, so later stages can keep the two apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rewardcond.artifacts import atomic_path, sha256_file, write_json, write_text
from rewardcond.data.prepare_report import prepare_report, report_markdown
from rewardcond.data.records import (
    COMPARISON_COLUMNS,
    COMPARISON_SPLITS,
    BadRecordError,
    Posts,
    Records,
    content_post_id,
    read_comparisons,
    read_tldr,
)

log = logging.getLogger(__name__)

TLDR_SPLITS = ("train", "valid", "test")
POST_COLUMNS = [
    "post_id", "subreddit", "title", "post", "reference", "split", "comparison_split", "domain"
]  # fmt: skip
COMPLETION_COLUMNS = ["completion_id", "post_id", "text", "policy", "source", "split", "domain"]

__all__ = [
    "COMPARISON_COLUMNS",
    "COMPLETION_COLUMNS",
    "POST_COLUMNS",
    "BadRecordError",
    "completion_id",
    "content_post_id",
    "prepare",
]


def completion_id(post_id: str, policy: str, text: str) -> str:
    """Stable 16-hex id of a (post, policy, text) completion."""
    return hashlib.sha256(f"{post_id}\x1f{policy}\x1f{text}".encode()).hexdigest()[:16]


def _verify(raw_dir: Path, name: str, entry: dict) -> Path:
    path = raw_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: listed in {raw_dir / 'manifest.json'} but missing")
    size = path.stat().st_size
    if "size" in entry and size != entry["size"]:
        raise ValueError(f"{path}: {size} bytes, but the manifest says {entry['size']}")
    if "sha256" in entry and sha256_file(path) != entry["sha256"]:
        raise ValueError(f"{path}: sha256 differs from the manifest's {entry['sha256']}")
    return path


def _most_held_out(splits: set[str] | None) -> str | None:
    """A post compared in several splits counts as the most held-out of them (no eval leakage)."""
    return max(splits, key=COMPARISON_SPLITS.index) if splits else None


def prepare(
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    on_bad_record: str = "error",
    lone_surrogates: str = "replace",
) -> dict[str, Any]:
    """Validate the raw files listed in `raw_dir/manifest.json`; write the tables and a report.

    Returns the report (also written as `report.json` and `report.md`): per file `lines`,
    `records` (kept), `skipped` with `skipped_by_reason` (lines = records + skipped) and the ids
    given to records without one (`id_from_tldr_3_filtered`, `id_from_content_hash`); posts,
    comparisons and completions by split and by domain. Raises `BadRecordError` (file:line:
    field) on a bad record with `on_bad_record="error"`.

    `lone_surrogates`: a lone UTF-16 surrogate in a string (JSON allows `\\ud83d`, half of an
    emoji; UTF-8 and Parquet cannot store it) is replaced by U+FFFD and the record kept, counted
    per file as `repaired_lone_surrogates` with examples in `repaired_examples` (`"replace"`), or
    makes the record bad (`"bad_record"`: an error or a counted skip, as `on_bad_record` says).
    For a synthetic world the report holds
    `bayes_optimal_accuracy` per comparison split (from its gold and label temperature) and
    `gold_label_agreement` (share of labels that prefer the higher gold).
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    records = Records(on_bad_record, lone_surrogates)
    manifest = json.loads((raw_dir / "manifest.json").read_text(encoding="utf-8"))
    posts = Posts()
    columns: dict[str, list] = {c: [] for c in COMPARISON_COLUMNS}
    seen: set = set()
    stats = []
    names = list(manifest["files"])
    tldr = [n for n in names if n.startswith("datasets/tldr_3_filtered/")]
    comparison_files = [n for n in names if n.startswith("dataset/comparisons/")]
    gold = {"gold.jsonl"} if manifest.get("source") == "synthetic" else set()  # the world's gold
    unread = sorted(set(names) - set(tldr) - set(comparison_files) - gold)
    if unread:  # e.g. OpenAI's axis_evals: another layout, which nothing here parses
        raise ValueError(
            f"{raw_dir / 'manifest.json'}: prepare reads datasets/tldr_3_filtered/*.jsonl and "
            f"dataset/comparisons/*.json, not {unread}; remove them from config key data.files"
        )
    for name in tldr:
        split = Path(name).stem
        if split not in TLDR_SPLITS:
            raise ValueError(
                f"{raw_dir / name}: unknown tldr_3_filtered split {split!r}; "
                f"expected one of {TLDR_SPLITS}"
            )
        path = _verify(raw_dir, name, manifest["files"][name])
        stats.append(read_tldr(path, name, split, posts, records))
    for name in comparison_files:
        path = _verify(raw_dir, name, manifest["files"][name])
        stats.append(read_comparisons(path, name, posts, records, columns, seen))
    del seen

    ids = list(posts.info)
    post_columns = {
        "post_id": ids,
        "subreddit": [posts.info[i][0] for i in ids],
        "title": [posts.info[i][1] for i in ids],
        "post": [posts.info[i][2] for i in ids],
        "reference": [posts.reference.get(i) for i in ids],
        "split": [posts.split.get(i) for i in ids],
        "comparison_split": [_most_held_out(posts.comparison_splits.get(i)) for i in ids],
        "domain": [posts.info[i][3] for i in ids],
    }
    completions = _completions(columns, posts)

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_table(out_dir / "posts.parquet", post_columns)
    _write_table(out_dir / "comparisons.parquet", columns)
    _write_table(out_dir / "completions.parquet", completions)
    report = prepare_report(
        manifest, raw_dir, on_bad_record, stats, records, posts, post_columns, columns, completions
    )
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", report_markdown(report))
    log.info(
        "prepared %d posts, %d comparisons, %d completions into %s",
        report["posts"],
        report["comparisons"],
        report["completions"],
        out_dir,
    )
    return report


SCHEMA = {"choice": pa.int64(), "confidence": pa.float64()}  # every other column is a string
DICTIONARY_COLUMNS = [
    "subreddit",
    "split",
    "comparison_split",
    "policy",
    "policy_0",
    "policy_1",
    "source",
    "worker",
    "batch",
    "domain",
]


def _write_table(path: Path, columns: dict[str, list]) -> None:
    """Write columns of Python values as Parquet, atomically; straight to Arrow (no pandas),
    which is several times faster for the long texts."""
    table = pa.table(
        {
            name: pa.array(values, type=SCHEMA.get(name, pa.string()))
            for name, values in columns.items()
        }
    )
    dictionary = [name for name in DICTIONARY_COLUMNS if name in columns]
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, use_dictionary=dictionary)


def _completions(columns: dict[str, list], posts: Posts) -> dict[str, list]:
    """Unique (post, policy, text) of the comparisons' summaries (the first keeps its split),
    then every post's reference summary."""
    rows: dict[tuple[str, str, str], tuple[str, str]] = {}
    for i in (0, 1):
        for post_id, text, policy, split in zip(
            columns["post_id"],
            columns[f"summary_{i}"],
            columns[f"policy_{i}"],
            columns["split"],
            strict=True,
        ):
            rows.setdefault((post_id, policy, text), ("comparison", split))
    for post_id, reference in posts.reference.items():
        rows.setdefault((post_id, "reference", reference), ("reference", posts.split[post_id]))
    return {
        "completion_id": [completion_id(*key) for key in rows],
        "post_id": [key[0] for key in rows],
        "text": [key[2] for key in rows],
        "policy": [key[1] for key in rows],
        "source": [value[0] for value in rows.values()],
        "split": [value[1] for value in rows.values()],
        "domain": [posts.info[key[0]][3] for key in rows],
    }

"""Parse and validate raw TL;DR feedback files into the prepared Parquet tables.

Input is a raw folder laid out like OpenAI's blob storage, with the `manifest.json` that the
download (or the synthetic generator) wrote: `dataset/comparisons/*.json` (one comparison per
line) and `datasets/tldr_3_filtered/{train,valid,test}.jsonl` (one post with its reference
summary per line). Output, under `out_dir`: `posts.parquet`, `comparisons.parquet`,
`completions.parquet`, `report.json` and `report.md` (columns in the module constants below).

Every record is validated; a bad one (a line that is not UTF-8, malformed JSON, missing field,
wrong type, `choice` not in {0, 1}, unknown split, empty summary, duplicate comparison or post,
text with a lone surrogate) is an error naming the file, the line and the field, or with
`on_bad_record="skip"` is skipped and counted per reason in the report, so that for every file
`lines == records + skipped`. Summary texts are stripped and given one leading space, as
completions of the prompt's "TL;DR:".

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
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from rewardcond.artifacts import atomic_path, sha256_file, write_json, write_text

log = logging.getLogger(__name__)

ON_BAD_RECORD = ("error", "skip")
LONE_SURROGATES = ("replace", "bad_record")
COMPARISON_SPLITS = ("train", "valid1", "valid2")
TLDR_SPLITS = ("train", "valid", "test")
POST_COLUMNS = [
    "post_id", "subreddit", "title", "post", "reference", "split", "comparison_split", "domain"
]  # fmt: skip
COMPARISON_COLUMNS = [
    "post_id",
    "summary_0",
    "summary_1",
    "policy_0",
    "policy_1",
    "choice",
    "split",
    "worker",
    "batch",
    "confidence",
    "domain",
]
COMPLETION_COLUMNS = ["completion_id", "post_id", "text", "policy", "source", "split", "domain"]
MAX_EXAMPLES = 20
CONTENT_ID_PREFIX = "sha256:"  # Reddit ids are base36 ("t3_2vwp1w"), CNN/DM ids hex: never ':'
ID_SOURCES = ("tldr_3_filtered", "content_hash")


class BadRecordError(ValueError):
    """A raw record that fails validation (raised when `on_bad_record="error"`)."""


class _Bad(Exception):
    def __init__(self, reason: str, field: str | None, message: str):
        super().__init__(message)
        self.reason, self.field, self.message = reason, field, message


@dataclass
class _FileStats:
    file: str
    kind: str
    lines: int = 0
    records: int = 0
    skipped: Counter = field(default_factory=Counter)
    assigned_ids: Counter = field(default_factory=Counter)  # kept records without info.id
    repaired: int = 0  # kept records with a lone surrogate replaced by U+FFFD


class _Records:
    """Routes bad records to an error or to the skip counts, and keeps a few examples."""

    def __init__(self, on_bad_record: str, lone_surrogates: str = "replace"):
        if on_bad_record not in ON_BAD_RECORD:
            raise ValueError(f"on_bad_record={on_bad_record!r}; expected one of {ON_BAD_RECORD}")
        if lone_surrogates not in LONE_SURROGATES:
            raise ValueError(
                f"lone_surrogates={lone_surrogates!r}; expected one of {LONE_SURROGATES}"
            )
        self.on_bad_record = on_bad_record
        self.repair_surrogates = lone_surrogates == "replace"
        self.examples: list[dict[str, Any]] = []
        self.repaired_examples: list[dict[str, Any]] = []

    def repaired(self, stats: _FileStats, line_no: int, fields: list[str]) -> None:
        """Count a kept record whose lone surrogates were replaced, and keep a few examples."""
        stats.repaired += 1
        if len(self.repaired_examples) < MAX_EXAMPLES:
            self.repaired_examples.append(
                {"file": stats.file, "line": line_no, "fields": ", ".join(fields)}
            )

    def bad(self, stats: _FileStats, line_no: int, bad: _Bad) -> None:
        where = f"{stats.file}:{line_no}" + (f": field {bad.field!r}" if bad.field else "")
        if self.on_bad_record == "error":
            raise BadRecordError(
                f"{where}: {bad.message} [{bad.reason}]. Fix the file, or set "
                "data.on_bad_record: skip to skip and count such records."
            )
        stats.skipped[bad.reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                {
                    "file": stats.file,
                    "line": line_no,
                    "field": bad.field,
                    "reason": bad.reason,
                    "message": bad.message,
                }
            )


def _lines(path: Path, name: str):
    """(line number, bytes) of a JSON-lines file, with a progress bar."""
    with open(path, "rb") as handle:
        yield from enumerate(tqdm(handle, desc=name, unit=" lines", leave=False), 1)


# A JSON escape of a UTF-16 surrogate (`\ud83d`): only lines holding one need the slow walk.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(value: Any, path: str, repaired: list[str]) -> Any:
    """`value` with every lone surrogate of its strings replaced by U+FFFD (the Unicode
    replacement character); the dotted paths of the strings changed are appended to `repaired`."""
    if isinstance(value, str):
        if _LONE_SURROGATE.search(value):
            repaired.append(path)
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {
            key: _replace_surrogates(item, f"{path}.{key}" if path else key, repaired)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_replace_surrogates(item, f"{path}[{i}]", repaired) for i, item in enumerate(value)]
    return value


def _parse(raw: bytes, repair_surrogates: bool = False) -> tuple[dict, list[str]]:
    """The JSON object of a line and the fields whose lone surrogates were replaced (only with
    `repair_surrogates`; else `_check_text` refuses them by field). UTF-8 is decoded strictly,
    line by line, so that a bad byte is an error at its line (json.loads of bytes would let
    encoded surrogates through)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"not UTF-8 (byte {raw[error.start]:#04x} at byte {error.start + 1})"
        raise _Bad("invalid_utf8", None, message) from None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        message = f"malformed JSON ({error.msg}, column {error.colno})"
        raise _Bad("malformed_json", None, message) from None
    if not isinstance(record, dict):
        raise _Bad("malformed_json", None, f"expected a JSON object, got {type(record).__name__}")
    repaired: list[str] = []
    if repair_surrogates and _SURROGATE_ESCAPE.search(raw):
        record = _replace_surrogates(record, "", repaired)
    return record, repaired


def _check_text(names: tuple[str, ...], values: tuple[str, ...]) -> None:
    """Refuse a string that UTF-8 (and so Parquet) cannot store: a lone surrogate, which JSON
    allows (e.g. `\\ud83d`, half of an emoji); the error names the field (`names[i]`)."""
    if all(map(str.isascii, values)):  # O(1) per string in CPython: the common case stays fast
        return
    for name, value in zip(names, values, strict=True):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _Bad(
                "lone_surrogate",
                name,
                f"lone surrogate U+{ord(value[error.start]):04X} at character {error.start + 1} "
                "(JSON allows it; UTF-8 and Parquet cannot store it)",
            ) from None


def _get(mapping: dict, key: str, kind: type, name: str) -> Any:
    """`mapping[key]`, required and of type `kind` (`name` is the dotted field for messages)."""
    value = mapping.get(key)
    if type(value) is kind:  # the common case, checked first: this runs ~10 times per line
        return value
    if value is None:
        raise _Bad("missing_field", name, "missing (or null)")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Bad("wrong_type", name, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _summary_text(text: str, name: str) -> str:
    text = text.strip()
    if not text:
        raise _Bad("empty_summary", name, "empty summary text")
    return " " + text


def _post_fields(info: dict, prefix: str) -> tuple[str, str, str, str]:
    """(subreddit, title, post, "tldr") of a TL;DR post, or (site, title, article, "cnndm") of a
    CNN/DM article (an `info` with `article` and no `post`)."""
    if "post" not in info and "article" in info:
        return (
            _get(info, "site", str, f"{prefix}site"),
            _get(info, "title", str, f"{prefix}title"),
            _get(info, "article", str, f"{prefix}article"),
            "cnndm",
        )
    return (
        _get(info, "subreddit", str, f"{prefix}subreddit"),
        _get(info, "title", str, f"{prefix}title"),
        _get(info, "post", str, f"{prefix}post"),
        "tldr",
    )


# Names of the text fields that reach a table, in the order `_read_tldr` / `_read_comparisons`
# check them, per domain.
TLDR_TEXT_FIELDS = {
    "tldr": ("id", "subreddit", "title", "post", "summary"),
    "cnndm": ("id", "site", "title", "article", "summary"),
}
COMPARISON_TEXT_FIELDS = {
    domain: (*(f"info.{name}" for name in names[:4]), "summaries[0].text", "summaries[1].text",
             "summaries[0].policy", "summaries[1].policy", "worker", "batch")
    for domain, names in TLDR_TEXT_FIELDS.items()
}  # fmt: skip


def _same_text(text: str) -> str:
    """How texts are compared when matching posts: whitespace runs (spaces, tabs, newlines) count
    as one space and leading/trailing whitespace is ignored; case and everything else count."""
    return " ".join(text.split())


def content_post_id(fields: tuple[str, str, str, str]) -> str:
    """The id of a post that has none: `sha256:` + 16 hex digits of its domain, subreddit (site),
    title and text, whitespace compared as by `_same_text`. The prefix holds a ':', which no
    Reddit id (`t3_` + base36) or CNN/DM id (hex) has, so the two kinds never collide."""
    key = "\x1f".join((fields[3], *(_same_text(text) for text in fields[:3])))
    # surrogatepass: a text with a lone surrogate gets an id too (and is then refused by field)
    return CONTENT_ID_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class _Posts:
    """Posts by id, in order of first appearance, with where they were seen."""

    info: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)
    split: dict[str, str] = field(default_factory=dict)
    comparison_splits: dict[str, set[str]] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)  # posts seen with differing texts
    _by_text: dict[tuple, str] | None = None

    def see(self, post_id: str, fields: tuple[str, str, str, str]) -> None:
        known = self.info.setdefault(post_id, fields)
        if known is not fields and known != fields:
            self.conflicts.add(post_id)

    def find_id(self, fields: tuple[str, str, str, str]) -> tuple[str, str]:
        """(id, how) for a post without one: the id of the tldr_3_filtered post with the same
        subreddit, title and text (compared by `_same_text`; the first in file order if several),
        else `content_post_id`. Call once every tldr_3_filtered file is read."""
        if self._by_text is None:  # built on first need (files without ids)
            self._by_text = {}
            for post_id in self.split:
                self._by_text.setdefault(self._text_key(self.info[post_id]), post_id)
        found = self._by_text.get(self._text_key(fields))
        return (found, "tldr_3_filtered") if found else (content_post_id(fields), "content_hash")

    @staticmethod
    def _text_key(fields: tuple[str, str, str, str]) -> tuple:
        return (fields[3], *(_same_text(text) for text in fields[:3]))


def _read_tldr(path: Path, name: str, split: str, posts: _Posts, records: _Records) -> _FileStats:
    stats = _FileStats(name, "posts")
    for line_no, raw in _lines(path, name):
        stats.lines += 1
        try:
            record, repaired = _parse(raw, records.repair_surrogates)
            post_id = _get(record, "id", str, "id")
            fields = _post_fields(record, "")
            reference = _summary_text(_get(record, "summary", str, "summary"), "summary")
            _check_text(TLDR_TEXT_FIELDS[fields[3]], (post_id, *fields[:3], reference))
            if post_id in posts.split:
                raise _Bad(
                    "duplicate_post",
                    "id",
                    f"post {post_id!r} already listed in tldr_3_filtered ({posts.split[post_id]})",
                )
        except _Bad as bad:
            records.bad(stats, line_no, bad)
            continue
        posts.see(post_id, fields)
        posts.reference[post_id] = reference
        posts.split[post_id] = split
        stats.records += 1
        if repaired:
            records.repaired(stats, line_no, repaired)
    return stats


def _read_comparisons(
    path: Path, name: str, posts: _Posts, records: _Records, columns: dict[str, list], seen: set
) -> _FileStats:
    stats = _FileStats(name, "comparisons")
    for line_no, raw in _lines(path, name):
        stats.lines += 1
        try:
            record, repaired = _parse(raw, records.repair_surrogates)
            info = _get(record, "info", dict, "info")
            fields = _post_fields(info, "info.")
            if info.get("id") in (None, ""):  # OpenAI's edit_b2_eval_test.json has no ids
                post_id, id_source = posts.find_id(fields)
            else:
                post_id, id_source = _get(info, "id", str, "info.id"), None
            summaries = _get(record, "summaries", list, "summaries")
            if len(summaries) != 2:
                raise _Bad("wrong_type", "summaries", f"expected 2 summaries, got {len(summaries)}")
            texts, policies = [], []
            for i, summary in enumerate(summaries):
                if not isinstance(summary, dict):
                    raise _Bad("wrong_type", f"summaries[{i}]", "expected an object")
                text = _get(summary, "text", str, f"summaries[{i}].text")
                texts.append(_summary_text(text, f"summaries[{i}].text"))
                policies.append(_get(summary, "policy", str, f"summaries[{i}].policy"))
            choice = _get(record, "choice", int, "choice")
            if choice not in (0, 1):
                raise _Bad("bad_choice", "choice", f"expected 0 or 1, got {choice}")
            split = _get(record, "split", str, "split")
            if split not in COMPARISON_SPLITS:
                raise _Bad(
                    "bad_split", "split", f"expected one of {COMPARISON_SPLITS}, got {split!r}"
                )
            worker = _get(record, "worker", str, "worker")
            batch = _get(record, "batch", str, "batch")
            extra = record.get("extra") or {}
            if not isinstance(extra, dict):
                raise _Bad("wrong_type", "extra", f"expected an object or null, got "
                           f"{type(extra).__name__}")  # fmt: skip
            confidence = extra.get("confidence")
            if confidence is not None and (
                isinstance(confidence, bool) or not isinstance(confidence, int | float)
            ):
                raise _Bad(
                    "wrong_type",
                    "extra.confidence",
                    f"expected a number or null, got {type(confidence).__name__}",
                )
            _check_text(
                COMPARISON_TEXT_FIELDS[fields[3]],
                (post_id, *fields[:3], *texts, *policies, worker, batch),
            )
            key = (post_id, worker, frozenset(zip(policies, texts, strict=True)))
            if key in seen:
                raise _Bad(
                    "duplicate_comparison",
                    "summaries",
                    f"worker {worker!r} already compared these two summaries of post {post_id!r}",
                )
        except _Bad as bad:
            records.bad(stats, line_no, bad)
            continue
        seen.add(key)
        if id_source:
            stats.assigned_ids[id_source] += 1
        posts.see(post_id, fields)
        posts.comparison_splits.setdefault(post_id, set()).add(split)
        for column, value in zip(
            COMPARISON_COLUMNS,
            (
                post_id,
                *texts,
                *policies,
                choice,
                split,
                worker,
                batch,
                np.nan if confidence is None else float(confidence),
                fields[3],
            ),
            strict=True,
        ):
            columns[column].append(value)
        stats.records += 1
        if repaired:
            records.repaired(stats, line_no, repaired)
    return stats


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
    records = _Records(on_bad_record, lone_surrogates)
    manifest = json.loads((raw_dir / "manifest.json").read_text(encoding="utf-8"))
    posts = _Posts()
    columns: dict[str, list] = {c: [] for c in COMPARISON_COLUMNS}
    seen: set = set()
    stats = []
    names = list(manifest["files"])
    tldr = [n for n in names if n.startswith("datasets/tldr_3_filtered/")]
    comparison_files = [n for n in names if n.startswith("dataset/comparisons/")]
    for name in tldr:
        split = Path(name).stem
        if split not in TLDR_SPLITS:
            raise ValueError(
                f"{raw_dir / name}: unknown tldr_3_filtered split {split!r}; "
                f"expected one of {TLDR_SPLITS}"
            )
        path = _verify(raw_dir, name, manifest["files"][name])
        stats.append(_read_tldr(path, name, split, posts, records))
    for name in comparison_files:
        path = _verify(raw_dir, name, manifest["files"][name])
        stats.append(_read_comparisons(path, name, posts, records, columns, seen))
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
    report = _report(
        manifest, raw_dir, on_bad_record, stats, records, posts, post_columns, columns, completions
    )
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", _report_markdown(report))
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


def _completions(columns: dict[str, list], posts: _Posts) -> dict[str, list]:
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


def _counts(values: list) -> dict[str, int]:
    counts = Counter("none" if value is None else str(value) for value in values)
    return dict(sorted(counts.items()))


def _report(
    manifest, raw_dir, on_bad_record, stats, records, posts, post_columns, comparisons, completions
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "source": manifest.get("source"),
        "raw_dir": str(raw_dir),
        "on_bad_record": on_bad_record,
        "lone_surrogates": "replace" if records.repair_surrogates else "bad_record",
        "files": [
            {
                "file": s.file,
                "kind": s.kind,
                "lines": s.lines,
                "records": s.records,
                "skipped": int(sum(s.skipped.values())),
                "skipped_by_reason": dict(s.skipped),
                **{f"id_from_{how}": s.assigned_ids[how] for how in ID_SOURCES},
                "repaired_lone_surrogates": s.repaired,
            }
            for s in stats
        ],
        "skipped_examples": records.examples,
        "repaired_examples": records.repaired_examples,
        "posts": len(post_columns["post_id"]),
        "posts_by_split": _counts(post_columns["split"]),
        "posts_by_comparison_split": _counts(post_columns["comparison_split"]),
        "posts_with_conflicting_text": len(posts.conflicts),
        "posts_in_several_comparison_splits": sum(
            len(s) > 1 for s in posts.comparison_splits.values()
        ),
        "posts_by_domain": _counts(post_columns["domain"]),
        "comparisons": len(comparisons["post_id"]),
        "comparisons_by_split": _counts(comparisons["split"]),
        "comparisons_by_domain": _counts(comparisons["domain"]),
        "comparisons_without_id": {
            how: sum(s.assigned_ids[how] for s in stats) for how in ID_SOURCES
        },
        "completions": len(completions["completion_id"]),
        "completions_by_source": _counts(completions["source"]),
        "completions_by_domain": _counts(completions["domain"]),
        "policies": _counts(completions["policy"]),
    }
    if "world" in manifest:
        report |= _gold_figures(raw_dir, manifest, comparisons)
    return report


def _gold_figures(raw_dir: Path, manifest: dict, comparisons: dict[str, list]) -> dict[str, Any]:
    from rewardcond.data.synthetic import GoldReward, bayes_optimal_accuracy

    gold = GoldReward.load(raw_dir / "gold.jsonl")
    temperature = manifest["world"]["label_temperature"]
    frame = pd.DataFrame({"split": comparisons["split"], "choice": comparisons["choice"]})
    frame["gold_0"] = gold.score(comparisons["post_id"], comparisons["summary_0"])
    frame["gold_1"] = gold.score(comparisons["post_id"], comparisons["summary_1"])
    accuracy, agreement = {}, {}
    for split, part in [("all", frame), *frame.groupby("split")]:
        accuracy[split] = bayes_optimal_accuracy(part["gold_0"], part["gold_1"], temperature)
        decided = part[part["gold_0"] != part["gold_1"]]
        preferred = (decided["gold_1"] > decided["gold_0"]).astype(int)
        agreement[split] = float((preferred == decided["choice"]).mean())
    return {
        "label_temperature": temperature,
        "bayes_optimal_accuracy": accuracy,
        "gold_label_agreement": agreement,
        "gold_ties": int((frame["gold_0"] == frame["gold_1"]).sum()),
    }


def _report_markdown(report: dict[str, Any]) -> str:
    files = pd.DataFrame(report["files"]).drop(columns="skipped_by_reason")
    lines = [
        f"# Prepare report ({report['source']})",
        "",
        f"Raw folder `{report['raw_dir']}`, on_bad_record: `{report['on_bad_record']}`, "
        f"lone_surrogates: `{report['lone_surrogates']}`.",
        "",
        "## Files",
        "",
        files.to_markdown(index=False),
        "",
        "## Output",
        "",
        f"- posts: {report['posts']} by split {report['posts_by_split']}, by comparison split "
        f"{report['posts_by_comparison_split']}",
        f"- comparisons: {report['comparisons']} by split {report['comparisons_by_split']}, "
        f"by domain {report['comparisons_by_domain']}",
        f"- completions: {report['completions']} by source {report['completions_by_source']}, "
        f"by domain {report['completions_by_domain']}",
        f"- posts by domain (tldr: Reddit TL;DR; cnndm: CNN/DailyMail): "
        f"{report['posts_by_domain']}",
        f"- comparisons without `info.id`, given the id of the same tldr_3_filtered post: "
        f"{report['comparisons_without_id']['tldr_3_filtered']}; given a content id "
        f"(`{CONTENT_ID_PREFIX}...`): {report['comparisons_without_id']['content_hash']}",
        f"- posts whose text differs between files (first kept): "
        f"{report['posts_with_conflicting_text']}",
        f"- posts compared in several splits (counted as the most held-out): "
        f"{report['posts_in_several_comparison_splits']}",
    ]
    skipped = sum((Counter(entry["skipped_by_reason"]) for entry in report["files"]), Counter())
    lines += ["", "## Skipped records", ""]
    lines += [f"- {reason}: {n}" for reason, n in sorted(skipped.items())] or ["None."]
    if report["skipped_examples"]:
        lines += ["", pd.DataFrame(report["skipped_examples"]).to_markdown(index=False)]
    repaired = sum(entry["repaired_lone_surrogates"] for entry in report["files"])
    lines += ["", "## Kept records with lone surrogates replaced by U+FFFD", ""]
    lines += [f"- records: {repaired}"]
    if report["repaired_examples"]:
        lines += ["", pd.DataFrame(report["repaired_examples"]).to_markdown(index=False)]
    if "bayes_optimal_accuracy" in report:
        table = pd.DataFrame(
            {
                "bayes_optimal_accuracy": report["bayes_optimal_accuracy"],
                "gold_label_agreement": report["gold_label_agreement"],
            }
        )
        lines += [
            "",
            "## Synthetic world",
            "",
            f"Labels are Bradley-Terry draws on gold with temperature "
            f"{report['label_temperature']}. The Bayes-optimal accuracy is the expected accuracy "
            "of a predictor that knows gold; the agreement is the share of labels (gold ties "
            f"excluded: {report['gold_ties']}) that chose the higher-gold summary.",
            "",
            table.rename_axis("split").to_markdown(floatfmt=".4f"),
        ]
    return "\n".join(lines) + "\n"

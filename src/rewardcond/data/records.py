"""Reading and validating the records of OpenAI's raw TL;DR files, line by line.

Every record is validated; a bad one (a line that is not UTF-8, malformed JSON, missing field,
wrong type, `choice` not in {0, 1}, unknown split, empty summary, duplicate comparison or post,
text with a lone surrogate) is an error naming the file, the line and the field, or with
`on_bad_record="skip"` is skipped and counted per reason (`Records`), so that for every file
`lines == records + skipped`. Summary texts are stripped and given one leading space, as
completions of the prompt's "TL;DR:". `rewardcond.data.prepare` writes the tables.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

ON_BAD_RECORD = ("error", "skip")
LONE_SURROGATES = ("replace", "bad_record")
COMPARISON_SPLITS = ("train", "valid1", "valid2")
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
MAX_EXAMPLES = 20
CONTENT_ID_PREFIX = "sha256:"  # Reddit ids are base36 ("t3_2vwp1w"), CNN/DM ids hex: never ':'
#: How a comparison without `info.id` got one (`Posts.find_id`), as the report counts them.
ID_SOURCES = ("tldr_3_filtered", "content_hash")


class BadRecordError(ValueError):
    """A raw record that fails validation (raised when `on_bad_record="error"`)."""


class Bad(Exception):
    def __init__(self, reason: str, field: str | None, message: str):
        super().__init__(message)
        self.reason, self.field, self.message = reason, field, message


@dataclass
class FileStats:
    file: str
    kind: str
    lines: int = 0
    records: int = 0
    skipped: Counter = field(default_factory=Counter)
    assigned_ids: Counter = field(default_factory=Counter)  # kept records without info.id
    repaired: int = 0  # kept records with a lone surrogate replaced by U+FFFD


class Records:
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

    def repaired(self, stats: FileStats, line_no: int, fields: list[str]) -> None:
        """Count a kept record whose lone surrogates were replaced, and keep a few examples."""
        stats.repaired += 1
        if len(self.repaired_examples) < MAX_EXAMPLES:
            self.repaired_examples.append(
                {"file": stats.file, "line": line_no, "fields": ", ".join(fields)}
            )

    def bad(self, stats: FileStats, line_no: int, bad: Bad) -> None:
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
        raise Bad("invalid_utf8", None, message) from None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        message = f"malformed JSON ({error.msg}, column {error.colno})"
        raise Bad("malformed_json", None, message) from None
    if not isinstance(record, dict):
        raise Bad("malformed_json", None, f"expected a JSON object, got {type(record).__name__}")
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
            raise Bad(
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
        raise Bad("missing_field", name, "missing (or null)")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Bad("wrong_type", name, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _summary_text(text: str, name: str) -> str:
    text = text.strip()
    if not text:
        raise Bad("empty_summary", name, "empty summary text")
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


# Names of the text fields that reach a table, in the order `read_tldr` / `read_comparisons`
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
class Posts:
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


def read_tldr(path: Path, name: str, split: str, posts: Posts, records: Records) -> FileStats:
    stats = FileStats(name, "posts")
    for line_no, raw in _lines(path, name):
        stats.lines += 1
        try:
            record, repaired = _parse(raw, records.repair_surrogates)
            post_id = _get(record, "id", str, "id")
            fields = _post_fields(record, "")
            reference = _summary_text(_get(record, "summary", str, "summary"), "summary")
            _check_text(TLDR_TEXT_FIELDS[fields[3]], (post_id, *fields[:3], reference))
            if post_id in posts.split:
                raise Bad(
                    "duplicate_post",
                    "id",
                    f"post {post_id!r} already listed in tldr_3_filtered ({posts.split[post_id]})",
                )
        except Bad as bad:
            records.bad(stats, line_no, bad)
            continue
        posts.see(post_id, fields)
        posts.reference[post_id] = reference
        posts.split[post_id] = split
        stats.records += 1
        if repaired:
            records.repaired(stats, line_no, repaired)
    return stats


def read_comparisons(
    path: Path, name: str, posts: Posts, records: Records, columns: dict[str, list], seen: set
) -> FileStats:
    stats = FileStats(name, "comparisons")
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
                raise Bad("wrong_type", "summaries", f"expected 2 summaries, got {len(summaries)}")
            texts, policies = [], []
            for i, summary in enumerate(summaries):
                if not isinstance(summary, dict):
                    raise Bad("wrong_type", f"summaries[{i}]", "expected an object")
                text = _get(summary, "text", str, f"summaries[{i}].text")
                texts.append(_summary_text(text, f"summaries[{i}].text"))
                policies.append(_get(summary, "policy", str, f"summaries[{i}].policy"))
            choice = _get(record, "choice", int, "choice")
            if choice not in (0, 1):
                raise Bad("bad_choice", "choice", f"expected 0 or 1, got {choice}")
            split = _get(record, "split", str, "split")
            if split not in COMPARISON_SPLITS:
                raise Bad(
                    "bad_split", "split", f"expected one of {COMPARISON_SPLITS}, got {split!r}"
                )
            worker = _get(record, "worker", str, "worker")
            batch = _get(record, "batch", str, "batch")
            extra = record.get("extra") or {}
            if not isinstance(extra, dict):
                raise Bad("wrong_type", "extra", f"expected an object or null, got "
                           f"{type(extra).__name__}")  # fmt: skip
            confidence = extra.get("confidence")
            if confidence is not None and (
                isinstance(confidence, bool) or not isinstance(confidence, int | float)
            ):
                raise Bad(
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
                raise Bad(
                    "duplicate_comparison",
                    "summaries",
                    f"worker {worker!r} already compared these two summaries of post {post_id!r}",
                )
        except Bad as bad:
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

"""Raw folders in the layout of OpenAI's summarize-from-feedback blob storage, with the quirks its
real files hold (issue 14 section 1), for the prepare tests and the end-to-end rehearsal.

Every text here is invented; only the layout is OpenAI's (their README's example comparison, the
field names of `tldr_3_filtered`, and what /work/shared/REAL-DATA-FACTS.md records about
`batch13`, `batch18` and `edit_b2_eval_test`).

    files = quirk_files()                       # {relative name: [record or raw line, ...]}
    write_raw(tmp_path / "raw", files)          # the files + manifest.json as `download` writes
    write_files(tmp_path / "served", files)     # the files only (to serve over HTTP); digests

`quirk_files()` holds only records that are valid (prepare keeps every one of them with
`on_bad_record: error`); `INVALID_LINES` holds the ones it must refuse (a lone surrogate, a line
that is not UTF-8), each with the file, field and reason of its error. `QUIRKS` says which record
carries which quirk. The counts that prepare must report for these files are in
tests/test_prepare.py (`test_real_layout_counts_add_up_*`).

A run of the default config against these files (served over HTTP) must also override the
`data.sha256` entries of workflow/config/config.yaml, which hold the digests of OpenAI's real
files: `write_files` returns the digests to put there.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

# OpenAI's README example, with invented text.
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
# About 11,000 GPT-2 tokens: longer than GPT-2's (1,024), DeBERTa-v3's (512) or Llama-2's (4,096)
# context. Later stages shorten its body to fit; prepare keeps it whole.
LONG_POST = "\n".join(
    f"Day {day}: I fed the sourdough starter, it rose a little and then sank again. "
    "My flatmate thinks the kitchen is too cold for it and wants it gone."
    for day in range(1, 301)
)
# An emoji written as a JSON surrogate pair (json.dumps writes it so): valid, and kept.
EMOJI = "\U0001f600"


def comparison(**changes) -> dict:
    """A copy of `COMPARISON` with dotted-path `changes` (`"info.id"`, `"summaries.1.text"`);
    a value of None deletes the key (use `NULL` to set JSON null)."""
    record = copy.deepcopy(COMPARISON)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = record
        for parent in parents:
            target = target[int(parent)] if parent.isdigit() else target[parent]
        if value is None:
            del target[key]
        else:
            target[key] = None if value is NULL else value
    return record


NULL = object()  # `comparison(extra=NULL)` writes `"extra": null`


def post(post_id: str, subreddit: str, title: str, text: str, summary: str) -> dict:
    """A tldr_3_filtered record."""
    return {"id": post_id, "subreddit": subreddit, "title": title, "post": text, "summary": summary}


def about(post_record: dict, **changes) -> dict:
    """`comparison(**changes)` about the post of a tldr_3_filtered record (same id and text)."""
    info = {key: post_record[key] for key in ("id", "post", "title", "subreddit")}
    return comparison(info=info, **changes)


PLANTS = post(
    "t3_plants1",
    "gardening",
    "My basil keeps dying",
    "I water it every day and it sits on a sunny window.\n\nThe leaves go yellow within a week.",
    "basil dies within a week despite daily water and sun, what am I doing wrong?",
)
STARTER = post(
    "t3_starter",
    "Breadit",
    "My flatmate wants my sourdough starter gone",
    LONG_POST,
    "flatmate wants my weak sourdough starter out of the cold kitchen; how do I keep it?",
)
BIKE = post(
    "t3_bike22",
    "bicycling",
    "Chain keeps slipping after I replaced the cassette",
    f"New cassette, old chain. It slips under load in the three smallest cogs. {EMOJI} Help?",
    "chain slips on a new cassette with an old chain",
)
RENT = post(
    "t3_rent333",
    "personalfinance",
    "Landlord wants six months of rent up front",
    "I just moved to a new city.  The landlord asks for\nsix months up front because I have no "
    "credit history here.   Is that normal?",
    "landlord asks six months of rent up front since I have no local credit; normal?",
)
EXAM = post(
    "t3_exam4",
    "college",
    "Failed my first exam",
    "I studied for two weeks and still failed the calculus midterm.",
    "failed a calculus midterm after two weeks of study",
)
# A CNN/DailyMail article as OpenAI's files give it: `article` and `site` instead of `post` and
# `subreddit`, a hex id (sha1 of the URL).
ARTICLE_INFO = {
    "id": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
    "site": "dailymail",
    "title": "Village bakery wins national bread prize",
    "article": "A village bakery has won a national prize for its sourdough.\n\nThe owners "
    "said they would keep their prices the same.",
}

# (file, 1-based line) -> the quirk it carries; every record of quirk_files() is listed.
QUIRKS = {
    ("datasets/tldr_3_filtered/train.jsonl", 1): "plain post",
    ("datasets/tldr_3_filtered/train.jsonl", 2): "post longer than any model's context",
    ("datasets/tldr_3_filtered/train.jsonl", 3): "an emoji written as a surrogate-pair escape",
    ("datasets/tldr_3_filtered/valid.jsonl", 1): "post with runs of spaces (matched by edit_b2)",
    ("datasets/tldr_3_filtered/test.jsonl", 1): "plain post",
    ("dataset/comparisons/batch3.json", 1): "README layout: notes, confidence 8",
    ("dataset/comparisons/batch3.json", 2): "the same pair judged by another worker",
    ("dataset/comparisons/batch3.json", 3): "extra null",
    ("dataset/comparisons/batch3.json", 4): "extra missing",
    ("dataset/comparisons/batch3.json", 5): "extra.confidence null",
    ("dataset/comparisons/batch3.json", 6): "extra without confidence",
    ("dataset/comparisons/batch3.json", 7): "the long post",
    ("dataset/comparisons/batch3.json", 8): "a CNN/DM record inside a TL;DR file",
    ("dataset/comparisons/batch3.json", 9): "a lone surrogate in a note (not kept: valid)",
    ("dataset/comparisons/batch13.json", 1): "a post not in tldr_3_filtered (valid1)",
    ("dataset/comparisons/batch13.json", 2): "policy ref vs a model, valid2",
    ("dataset/comparisons/batch13.json", 3): "the CNN/DM article again, valid2",
    ("dataset/comparisons/batch18.json", 1): "the batch13 post again, slightly different text",
    ("dataset/comparisons/batch18.json", 2): "policy ref, the post repeated",
    ("dataset/comparisons/batch18.json", 3): "policy ref, the post repeated, third worker",
    ("dataset/comparisons/edit_b2_eval_test.json", 1): "no info.id, post in tldr_3_filtered "
    "(whitespace differs)",
    ("dataset/comparisons/edit_b2_eval_test.json", 2): "no info.id, the same post, ref vs editor",
    ("dataset/comparisons/edit_b2_eval_test.json", 3): "no info.id, post not in tldr_3_filtered",
}

BATCH13_INFO = {
    "id": "t3_moving5",
    "subreddit": "relationships",
    "title": "Moving in together after three months?",
    "post": "My girlfriend (24F) asked me (25M) to move in after three months. I like her a lot "
    "but it feels fast.",
}


def quirk_files() -> dict[str, list]:
    """Every valid quirk of OpenAI's files, as {relative name: [record, ...]} (see `QUIRKS`).

    prepare keeps all 23 records: 5 posts in tldr_3_filtered (3 train, 1 valid, 1 test) and 18
    comparisons (9 in batch3, 3 in batch13, 3 in batch18, 3 in edit_b2_eval_test), of 8 posts,
    one of them a CNN/DM article (compared in train and valid2).
    """
    editor = "human_editor"  # invented name; edit_b2's policies include a human editor and ref
    moved = {**BATCH13_INFO, "post": BATCH13_INFO["post"].replace("a lot", "a lot ") + "\n"}
    rent_spaced = {  # edit_b2 has no id; its whitespace differs from tldr_3_filtered's
        "post": "  I just moved to a new city. The landlord asks for six months up front\n\n"
        "because I have no credit history here. Is that normal?  ",
        "title": RENT["title"] + " ",
        "subreddit": RENT["subreddit"],
    }
    unknown = {
        "post": "My neighbour's dog barks from six in the morning. I asked politely twice.",
        "title": "Barking dog at 6am",
        "subreddit": "neighbors",
    }
    a, b = " water less, basil hates wet roots", " basil yellow"
    return {
        "datasets/tldr_3_filtered/train.jsonl": [PLANTS, STARTER, BIKE],
        "datasets/tldr_3_filtered/valid.jsonl": [RENT],
        "datasets/tldr_3_filtered/test.jsonl": [EXAM],
        "dataset/comparisons/batch3.json": [
            about(
                PLANTS,
                **{
                    "summaries.0.text": a,
                    "summaries.1.text": b,
                    "batch": "batch3",
                    "summaries.0.note": "Basil is dying.",
                },
            ),
            about(
                PLANTS,
                **{
                    "summaries.0.text": a,
                    "summaries.1.text": b,
                    "batch": "batch3",
                    "worker": "worker_b",
                    "choice": 0,
                },
            ),
            about(BIKE, extra=NULL, **{"summaries.0.text": " new chain needed"}),
            about(BIKE, extra=None, worker="worker_b"),
            about(BIKE, **{"extra.confidence": NULL}, worker="worker_c"),
            about(BIKE, extra={"note_from_team": "checked"}, worker="worker_d"),
            about(STARTER, **{"summaries.0.text": " starter too cold"}),
            comparison(
                info=ARTICLE_INFO,
                **{
                    "summaries.0.text": " bakery wins prize",
                    "summaries.1.text": " a bakery won a prize",
                },
            ),
            about(EXAM, split="valid2", **{"summaries.1.note": "half an emoji: \ud83d"}),
        ],
        "dataset/comparisons/batch13.json": [
            comparison(info=BATCH13_INFO, split="valid1", batch="batch13"),
            about(
                RENT, split="valid2", batch="batch13", **{"summaries.1.text": " " + RENT["summary"]}
            ),
            comparison(info=ARTICLE_INFO, split="valid2", batch="batch13", worker="worker_h"),
        ],
        "dataset/comparisons/batch18.json": [
            comparison(info=moved, split="valid2", batch="batch18", worker="worker_e"),
            about(
                RENT,
                split="valid2",
                batch="batch18",
                worker="worker_e",
                **{
                    "summaries.0.text": " landlord wants money",
                    "summaries.0.policy": "ref",
                    "summaries.1.policy": "sup4_6b_t0.7",
                },
            ),
            about(
                RENT,
                split="valid2",
                batch="batch18",
                worker="worker_f",
                **{
                    "summaries.0.text": " landlord wants money",
                    "summaries.0.policy": "ref",
                    "summaries.1.policy": "sup4_6b_t0.7",
                },
            ),
        ],
        "dataset/comparisons/edit_b2_eval_test.json": [
            comparison(
                info=rent_spaced, split="valid2", batch="edit_b2", **{"summaries.0.policy": editor}
            ),
            comparison(
                info=rent_spaced,
                split="valid2",
                batch="edit_b2",
                worker="worker_g",
                **{"summaries.0.policy": "ref", "summaries.1.policy": editor},
            ),
            comparison(
                info=unknown, split="valid2", batch="edit_b2", **{"summaries.1.policy": editor}
            ),
        ],
    }


def cnndm_files() -> dict[str, list]:
    """A file of `data.cnndm_files` (fetched with `include_cnndm: true`): CNN/DM comparisons
    (article and site), one train and one valid2."""
    second = {
        **ARTICLE_INFO,
        "id": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "site": "cnn",
        "title": "City opens its first public library in decades",
    }
    second["article"] = "The city has opened a public library, its first since 1980."
    return {
        "dataset/comparisons/cnndm0.json": [
            comparison(info=ARTICLE_INFO, batch="cnndm0", worker="worker_i"),
            comparison(info=second, split="valid2", batch="cnndm0"),
        ]
    }


# Lines prepare must refuse: (file, record or raw line, field named in the error, reason). Added
# at the end of their file by `with_invalid_lines`.
INVALID_LINES = [
    (
        "dataset/comparisons/batch3.json",
        comparison(**{"summaries.1.text": " it broke \ud83d"}),
        "summaries[1].text",
        "lone_surrogate",
    ),
    (
        "dataset/comparisons/edit_b2_eval_test.json",
        comparison(info={"post": "Half an emoji \udc00 here.", "title": "t", "subreddit": "s"}),
        "info.post",
        "lone_surrogate",
    ),
    (
        "datasets/tldr_3_filtered/train.jsonl",
        {**EXAM, "id": "t3_exam9", "title": "Broken \udfff title"},
        "title",
        "lone_surrogate",
    ),
    ("dataset/comparisons/batch13.json", b'{"info": "\xff\xfe"}', None, "invalid_utf8"),
]


def with_invalid_lines(files: dict[str, list]) -> dict[str, list]:
    """`files` with every `INVALID_LINES` record appended to its file (a new dict)."""
    files = {name: list(lines) for name, lines in files.items()}
    for name, line, _, _ in INVALID_LINES:
        files[name].append(line)
    return files


def encode_line(line) -> bytes:
    """A record as one JSON line (json.dumps writes non-ASCII as escapes, a lone surrogate as
    `\\udXXX`), a str as is, bytes untouched."""
    if isinstance(line, bytes):
        return line + b"\n"
    text = line if isinstance(line, str) else json.dumps(line)
    return text.encode("utf-8") + b"\n"


def write_files(root: Path, files: dict[str, list]) -> dict[str, str]:
    """Write `{relative name: lines}` under `root`; returns {name: sha256 hex} (what a config's
    `data.sha256` would hold for these files)."""
    digests = {}
    for name, lines in files.items():
        path = Path(root) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(encode_line(line) for line in lines)
        path.write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def write_raw(root: Path, files: dict[str, list], *, source: str = "openai") -> Path:
    """Write the files and a `manifest.json` as `download` writes it (url, size, sha256); returns
    `root`, ready for `prepare`."""
    root = Path(root)
    digests = write_files(root, files)
    base_url = "https://openaipublic.blob.core.windows.net/summarize-from-feedback"
    entries = {
        name: {
            "url": f"{base_url}/{name}",
            "size": (root / name).stat().st_size,
            "sha256": digest,
            "downloaded": True,
        }
        for name, digest in digests.items()
    }
    manifest = {"source": source, "base_url": base_url, "files": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root

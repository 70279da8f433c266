"""A local mirror of OpenAI's summarize-from-feedback blob storage, with invented text.

`write_mirror(root, files)` writes every file of the default config's `data.files` under
`root/summarize-from-feedback/`, in the real record layout (one JSON object per line):

- `dataset/comparisons/<batch>.json`: `{"info": {"id", "post", "title", "subreddit"},
  "summaries": [{"text", "policy", "note"}, {...}], "choice", "worker", "batch", "split",
  "extra": {"confidence"}}`; summary texts keep the leading space OpenAI's data has;
- `datasets/tldr_3_filtered/{train,valid,test}.jsonl`: `{"id", "subreddit", "title", "post",
  "summary"}`.

The posts are made of short facts; the reference summary states them all, and the summary
"policies" state more or fewer of them or none (`ref` is the human reference itself), so that
summaries differ in quality and the human choice (a Bradley-Terry draw on that quality) prefers
the better one four times out of five: a reward model trained on them has something to learn.

What the real files hold and a parser may assume away is written too (each by a writer that can
emit it): `note` strings, `extra` null or missing, `confidence` null, `ref` and human-editor
policies, the same pair judged by several workers, a post that appears in several batches,
comparison posts that `tldr_3_filtered` lacks, and a post longer than any model's context.
So are the records of `edit_b2_eval_test.json` without `info.id` and a lone surrogate
(`\\ud83d`, half of an emoji) in a summary: `prepare` keeps both (issue 14 section 1).

`MirrorServer` serves the folder over HTTP on 127.0.0.1 (Content-Length, no Range: a download
that completes on the first attempt never asks for one).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PREFIX = "summarize-from-feedback"
COMPARISONS = "dataset/comparisons/"
TLDR = "datasets/tldr_3_filtered/"
EDIT_FILE = "dataset/comparisons/edit_b2_eval_test.json"
# Files that hold only valid1/valid2 comparisons in OpenAI's data (shared/REAL-DATA-FACTS.md).
VALID_ONLY = ("dataset/comparisons/batch13.json", "dataset/comparisons/batch18.json")
# Summary writers, best to worst: how many of the post's facts each states.
POLICIES = {"ref": None, "sup4_ppo_rm3_kl10": 1.0, "sup4_6b": 0.67, "sup2": 0.34, "pretrain_6b": 0}
EDITOR_POLICY = "human_editor"
SUBREDDITS = ["relationships", "personalfinance", "legaladvice", "tifu", "cooking", "AskReddit"]
PEOPLE = ["my sister", "my roommate", "my boss", "my landlord", "my boyfriend", "our neighbour"]
ACTIONS = [
    "lost the keys",
    "moved to another city",
    "borrowed money",
    "forgot the birthday",
    "broke the oven",
    "started a new job",
    "adopted a dog",
    "sold the car",
]
PLACES = ["at work", "last week", "on the weekend", "at the party", "after dinner", "in march"]
FILLERS = [
    "I am not sure what to think.",
    "Any advice is welcome.",
    "This has happened before.",
    "Sorry for the formatting, I am on mobile.",
    "Thanks for reading.",
]


@dataclass
class Post:
    """An invented Reddit post: `facts` are the sentences a good summary states."""

    id: str
    subreddit: str
    title: str
    facts: list[str]
    fillers: list[str]
    split: str  # tldr_3_filtered split: train, valid or test
    in_tldr: bool = True  # whether tldr_3_filtered lists it (some comparison posts are not)
    extra_words: int = 0  # filler words appended to make it longer than any context

    @property
    def text(self) -> str:
        body = " ".join(f"{fact[0].upper()}{fact[1:]}." for fact in self.facts)
        body += " " + " ".join(self.fillers)
        if self.extra_words:
            body += "\n" + " ".join(["and then nothing else happened"] * (self.extra_words // 5))
        return body

    @property
    def reference(self) -> str:
        return " " + ", ".join(self.facts) + "."

    def info(self, *, with_id: bool = True) -> dict:
        info = {"id": self.id} if with_id else {}
        return info | {"post": self.text, "title": self.title, "subreddit": self.subreddit}


def make_posts(n: int, rng: random.Random, *, long_posts: Sequence[int] = ()) -> list[Post]:
    """`n` posts, 60% train, 20% valid, 20% test; those at `long_posts` get 4000 extra words
    (longer than GPT-2's 1024 positions and DeBERTa's 512 in any tokenizer)."""
    posts = []
    for i in range(n):
        facts = [
            f"{rng.choice(PEOPLE)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}"
            for _ in range(rng.randint(2, 4))
        ]
        split = "train" if i % 5 < 3 else ("valid" if i % 5 == 3 else "test")
        posts.append(
            Post(
                id=f"t3_{i:05x}r",
                subreddit=rng.choice(SUBREDDITS),
                title=f"{facts[0].capitalize()}, what now?",
                facts=facts,
                fillers=rng.sample(FILLERS, 2),
                split=split,
                in_tldr=i % 11 != 7,
                extra_words=4000 if i in long_posts else 0,
            )
        )
    return posts


def summary(post: Post, policy: str, rng: random.Random) -> tuple[str, float]:
    """(text, quality) of `policy`'s summary of `post`; quality = share of facts stated."""
    if policy in ("ref", EDITOR_POLICY):
        return post.reference, 1.0
    share = POLICIES[policy]
    if share == 0:
        words = " ".join(rng.sample(ACTIONS, 2))
        return f" {words} lol", 0.0
    kept = post.facts[: max(1, round(share * len(post.facts)))]
    return " " + ", ".join(kept), len(kept) / len(post.facts)


def comparison_record(
    post: Post,
    pair: Sequence[tuple[str, str]],
    choice: int,
    *,
    worker: str,
    batch: str,
    split: str,
    confidence: int | None = 5,
    extra: str = "object",
    notes: Sequence[str | None] = (None, None),
    with_id: bool = True,
) -> dict:
    """One comparison in OpenAI's layout; `pair` is ((policy, text), (policy, text)).

    `extra`: "object" writes `{"confidence": confidence}` (null when None), "null" writes
    `"extra": null`, "missing" leaves the key out. `with_id=False` leaves out `info.id` (as in
    edit_b2_eval_test.json).
    """
    record = {
        "info": post.info(with_id=with_id),
        "summaries": [
            {"text": text, "policy": policy, "note": note}
            for (policy, text), note in zip(pair, notes, strict=True)
        ],
        "choice": choice,
        "worker": worker,
        "batch": batch,
        "split": split,
    }
    if extra == "object":
        record["extra"] = {"confidence": confidence}
    elif extra == "null":
        record["extra"] = None
    elif extra != "missing":
        raise ValueError(f"extra={extra!r}; expected object, null or missing")
    return record


def tldr_record(post: Post) -> dict:
    """One line of tldr_3_filtered/<split>.jsonl."""
    return {
        "id": post.id,
        "subreddit": post.subreddit,
        "title": post.title,
        "post": post.text,
        "summary": post.reference,
    }


def lone_surrogate(text: str) -> str:
    """`text` with half of an emoji appended: JSON writes it as `\\ud83d`, UTF-8 cannot."""
    return text + " \ud83d"


def dump_lines(records: Iterable[dict]) -> bytes:
    """JSON lines as OpenAI's files hold them (ASCII with \\u escapes)."""
    return "".join(json.dumps(record) + "\n" for record in records).encode("ascii")


@dataclass
class Mirror:
    """What `write_mirror` wrote: file name -> bytes, and the posts behind them."""

    files: dict[str, bytes]
    posts: list[Post]
    comparisons: dict[str, int] = field(default_factory=dict)  # file -> records

    @property
    def sha256(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}


def build_mirror(files: Sequence[str], *, n_posts: int = 60, seed: int = 0) -> Mirror:
    """Real-layout contents for every name in `files` (comparison batches, edit_b2_eval_test,
    tldr_3_filtered splits), with the quirks described in the module docstring."""
    rng = random.Random(seed)
    posts = make_posts(n_posts, rng, long_posts=(5, 9))
    batches = [n for n in files if n.startswith(COMPARISONS) and n != EDIT_FILE]
    lines: dict[str, list[dict]] = {name: [] for name in files if name.startswith(COMPARISONS)}
    split_of = {"train": "train", "valid": "valid1", "test": "valid2"}
    workers = [f"w{k:02d}{''.join(rng.choices('abcdefghij', k=24))}" for k in range(6)]
    policies = list(POLICIES)
    count = 0
    for post in posts:
        split = split_of[post.split]
        choices = [b for b in batches if split != "train" or b not in VALID_ONLY]
        for k in range(3 if split == "train" else 2):
            pair_policies = rng.sample(policies, 2)
            pair = []
            quality = []
            for policy in pair_policies:
                text, q = summary(post, policy, rng)
                pair.append((policy, text))
                quality.append(q)
            better = int(quality[1] > quality[0]) if quality[0] != quality[1] else rng.randint(0, 1)
            choice = better if rng.random() < 0.8 else 1 - better
            batch = choices[count % len(choices)]  # k > 0: the post in several batches
            count += 1
            options = dict(worker=workers[count % len(workers)], split=split)
            if count % 7 == 0:
                options |= dict(extra="null")
            elif count % 7 == 1:
                options |= dict(extra="missing")
            elif count % 7 == 2:
                options |= dict(confidence=None)
            else:
                options |= dict(confidence=1 + count % 9)
            if count % 5 == 0:
                options |= dict(notes=("too short", None))
            name = Path(batch).stem
            lines[batch].append(comparison_record(post, pair, choice, batch=name, **options))
            if k == 0 and count % 4 == 0:  # the same pair judged by another worker
                options["worker"] = workers[(count + 1) % len(workers)]
                lines[batch].append(
                    comparison_record(post, pair, 1 - choice, batch=name, **options)
                )
    record = lines[batches[0]][0]  # half of an emoji in a summary
    record["summaries"][0]["text"] = lone_surrogate(record["summaries"][0]["text"])
    if EDIT_FILE in lines:
        edited = [p for p in posts if p.split == "test"][:5]
        for i, post in enumerate(edited):
            text, _ = summary(post, "sup2", rng)
            pair = [("ref", post.reference), (EDITOR_POLICY, post.reference + " (edited)")]
            if i % 2:
                pair = [(EDITOR_POLICY, post.reference + " (edited)"), ("sup2", text)]
            lines[EDIT_FILE].append(
                comparison_record(
                    post,
                    pair,
                    i % 2,
                    worker=workers[i % len(workers)],
                    batch="edit_b2_eval_test",
                    split="valid2",
                    with_id=False,  # as OpenAI's file: info has post, title, subreddit
                )
            )
    contents = {name: dump_lines(records) for name, records in lines.items()}
    for name in files:
        if name.startswith(TLDR):
            split = Path(name).stem
            contents[name] = dump_lines(
                tldr_record(p) for p in posts if p.split == split and p.in_tldr
            )
    unknown = sorted(set(files) - set(contents))
    if unknown:
        raise ValueError(f"no real-layout writer for {unknown}")
    return Mirror(
        files={name: contents[name] for name in files},
        posts=posts,
        comparisons={name: len(records) for name, records in lines.items()},
    )


def write_mirror(root: str | os.PathLike, mirror: Mirror) -> Path:
    """Write `mirror` under `root/summarize-from-feedback/` (the URL path of OpenAI's blob)."""
    base = Path(root) / PREFIX
    for name, data in mirror.files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    return base


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output readable
        pass


class MirrorServer:
    """Serves folder `root` on 127.0.0.1 in a daemon thread; a context manager.

    `base_url` is what `data.base_url` points at (`.../summarize-from-feedback`).
    """

    def __init__(self, root: str | os.PathLike):
        handler = partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{PREFIX}"

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

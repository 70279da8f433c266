"""A synthetic TL;DR world with a known gold reward, for offline runs, the demo and tests.

Each post states a few facts in one fixed form, "my ENTITY is ATTRIBUTE.", among filler
sentences. A good summary copies the post's own fact sentences verbatim and in post order, so a
tiny language model can learn the task by copying. The gold reward (`GoldReward`) scores any text
as a summary of a given post: the share of that post's facts it states, minus mild penalties for
wrong facts (another post's, or a wrong attribute), repeated facts and words beyond a small
allowance. Named policies of varying quality write candidate summaries; comparisons between two
of them are labelled by a Bradley-Terry draw on gold with a configurable temperature.

The generator writes the same raw files as OpenAI's blob storage (`dataset/comparisons/batch*.json`,
`datasets/tldr_3_filtered/{train,valid,test}.jsonl`) plus `gold.jsonl` (the facts of every post)
and `manifest.json` (files, checksums and the world's parameters), so everything after the
download runs the same code for both sources.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rewardcond.artifacts import sha256_file, write_json, write_text

log = logging.getLogger(__name__)

SUBREDDIT_ENTITIES = {
    "relationships": ("girlfriend", "boyfriend", "sister", "brother", "mother", "father", "friend",
                      "wife", "husband", "cousin"),
    "personalfinance": ("rent", "loan", "salary", "budget", "card", "savings", "bill", "car",
                        "mortgage", "insurance"),
    "jobs": ("boss", "manager", "coworker", "job", "interview", "shift", "team", "office",
             "contract", "schedule"),
    "pets": ("dog", "cat", "puppy", "vet", "hamster", "parrot", "kitten", "fish", "horse",
             "rabbit"),
    "tifu": ("phone", "laptop", "bike", "key", "wallet", "door", "neighbor", "roommate",
             "landlord", "kitchen"),
}  # fmt: skip
ATTRIBUTES = (
    "angry", "broken", "late", "sick", "gone", "lost", "expensive", "new", "old", "quiet",
    "loud", "tired", "happy", "sad", "missing", "cheap", "busy", "stuck", "worried", "upset",
)  # fmt: skip
FILLERS = (
    "i do not know what to do.",
    "this started last week.",
    "any advice would help.",
    "it has been a long month.",
    "i tried to talk about it.",
    "thanks for reading.",
    "so here is the story.",
    "please help me out.",
)
TITLES = (
    "what do i do about my {entity}?",
    "need advice about my {entity}",
    "help with my {entity} situation",
    "my {entity} and everything else",
)
ENDINGS = ("what should i do?", "need advice.", "help?")
POLICIES = ("ref", "full", "most", "half", "single", "verbose", "confused", "off_topic")
"""Named summary writers, best to worst in expectation (see `_policy_summary`)."""

FACT_PATTERN = re.compile(r"\bmy\s+([a-z]+)\s+is\s+([a-z]+)\b")
WORD_PATTERN = re.compile(r"[a-z0-9']+")
TLDR_SPLITS = ("train", "valid", "test")
COMPARISON_SPLIT = {"train": "train", "valid": "valid1", "test": "valid2"}

Fact = tuple[str, str]


def fact_sentence(fact: Fact) -> str:
    """The one fixed form a fact takes in posts and good summaries."""
    return f"my {fact[0]} is {fact[1]}."


class GoldReward:
    """The ground-truth quality of any text as a summary of a given synthetic post.

    gold = covered / n_facts - WRONG * wrong - REPEAT * repeated - EXTRA * max(0, extra - FREE)

    where `covered` counts the post's own facts stated at least once, `wrong` the stated facts
    that are not the post's (another post's, or a wrong attribute), `repeated` the restatements of
    an own fact, and `extra` the words outside fact phrases (FREE of them are allowed, so a short
    "what should i do?" costs nothing). A perfect summary scores 1.0, an empty one 0.0, a good
    summary of another post below 0. Matching is case-insensitive.
    """

    WRONG = 0.2
    REPEAT = 0.1
    EXTRA = 0.02
    FREE = 4

    def __init__(self, facts: dict[str, Sequence[Fact]]):
        self.facts = {
            post_id: [tuple(f) for f in post_facts] for post_id, post_facts in facts.items()
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> GoldReward:
        """Read `gold.jsonl` (one `{"id", "facts": [[entity, attribute], ...]}` per post)."""
        facts = {}
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                facts[record["id"]] = record["facts"]
        return cls(facts)

    def components(self, post_id: str, text: str) -> tuple[int, int, int, int, int, float]:
        """`(covered, n_facts, wrong, repeated, extra_words, gold)` of one text for one post."""
        if post_id not in self.facts:
            raise KeyError(f"post_id {post_id!r} has no gold facts (not a synthetic post?)")
        own = set(self.facts[post_id])
        lowered = text.lower()
        stated = [(m.group(1), m.group(2)) for m in FACT_PATTERN.finditer(lowered)]
        seen: set[Fact] = set()
        wrong = repeated = 0
        for fact in stated:
            if fact not in own:
                wrong += 1
            elif fact in seen:
                repeated += 1
            seen.add(fact)
        covered = len(seen & own)
        extra = len(WORD_PATTERN.findall(lowered)) - 4 * len(stated)
        gold = (
            covered / len(own)
            - self.WRONG * wrong
            - self.REPEAT * repeated
            - self.EXTRA * max(0, extra - self.FREE)
        )
        return covered, len(own), wrong, repeated, extra, gold

    def breakdown(self, post_ids: Sequence[str], texts: Sequence[str]) -> pd.DataFrame:
        """Per text: `covered, n_facts, wrong, repeated, extra_words, gold`."""
        if len(post_ids) != len(texts):
            raise ValueError(f"{len(post_ids)} post_ids but {len(texts)} texts; expected equal")
        rows = [self.components(p, t) for p, t in zip(post_ids, texts, strict=True)]
        columns = ["covered", "n_facts", "wrong", "repeated", "extra_words", "gold"]
        return pd.DataFrame(rows, columns=columns).astype({"gold": "float64"})

    def score(self, post_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Gold reward (float64) of each text as a summary of the post with the same index."""
        return self.breakdown(post_ids, texts)["gold"].to_numpy(dtype=np.float64)


@dataclass
class WorldConfig:
    """Sizes and noise of the synthetic world (config section `synthetic:`)."""

    n_posts: int = 3000
    facts_min: int = 3
    facts_max: int = 5
    fillers_min: int = 1
    fillers_max: int = 3
    comparisons_per_post: int = 3
    label_temperature: float = 0.1
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1}
    )
    n_batches: int = 3
    n_workers: int = 8

    def __post_init__(self):
        if self.n_posts < 2:
            raise ValueError("n_posts must be >= 2 (off-topic summaries need another post)")
        if not 1 <= self.facts_min <= self.facts_max:
            raise ValueError(
                f"need 1 <= facts_min <= facts_max, got {self.facts_min}, {self.facts_max}"
            )
        if self.facts_max > min(len(e) for e in SUBREDDIT_ENTITIES.values()):
            raise ValueError(f"facts_max={self.facts_max} exceeds the entities of a subreddit")
        if not 0 <= self.fillers_min <= self.fillers_max:
            raise ValueError(
                f"need 0 <= fillers_min <= fillers_max, got {self.fillers_min}, {self.fillers_max}"
            )
        if set(self.split_fractions) != set(TLDR_SPLITS):
            raise ValueError(
                f"split_fractions needs keys {TLDR_SPLITS}, got {self.split_fractions}"
            )
        if abs(sum(self.split_fractions.values()) - 1.0) > 1e-9:
            raise ValueError(f"split_fractions must sum to 1, got {self.split_fractions}")
        if self.label_temperature <= 0:
            raise ValueError(f"label_temperature must be > 0, got {self.label_temperature}")
        if self.comparisons_per_post > len(POLICIES) * (len(POLICIES) - 1) // 2:
            raise ValueError(
                f"comparisons_per_post={self.comparisons_per_post} exceeds the "
                f"{len(POLICIES)} policies' distinct pairs"
            )


@dataclass
class _Post:
    id: str
    subreddit: str
    title: str
    post: str
    facts: list[Fact]
    split: str


def _make_post(rng: np.random.Generator, index: int, config: WorldConfig, split: str) -> _Post:
    subreddit = str(rng.choice(list(SUBREDDIT_ENTITIES)))
    n_facts = int(rng.integers(config.facts_min, config.facts_max + 1))
    entities = rng.choice(SUBREDDIT_ENTITIES[subreddit], size=n_facts, replace=False)
    attributes = rng.choice(ATTRIBUTES, size=n_facts, replace=True)
    facts = [(str(e), str(a)) for e, a in zip(entities, attributes, strict=True)]
    sentences = [fact_sentence(f) for f in facts]
    n_fillers = int(rng.integers(config.fillers_min, config.fillers_max + 1))
    for filler in rng.choice(FILLERS, size=n_fillers, replace=False):
        sentences.insert(int(rng.integers(0, len(sentences) + 1)), str(filler))
    title = str(rng.choice(TITLES)).format(entity=facts[0][0])
    return _Post(f"t3_syn{index:06d}", subreddit, title, " ".join(sentences), facts, split)


def _summary(facts: Sequence[Fact], extras: Sequence[str] = ()) -> str:
    """Fact sentences then extra sentences, with the leading space of a completion."""
    return " " + " ".join([fact_sentence(f) for f in facts] + list(extras))


def _ordered_subset(rng: np.random.Generator, facts: list[Fact], size: int) -> list[Fact]:
    keep = sorted(rng.choice(len(facts), size=size, replace=False))
    return [facts[i] for i in keep]


def _reference(rng: np.random.Generator, post: _Post) -> str:
    """Good, not perfect: one fact (never the first) may be left out, an ending added."""
    facts = list(post.facts)
    if len(facts) > 1 and rng.random() < 0.3:
        facts.pop(int(rng.integers(1, len(facts))))
    endings = [str(rng.choice(ENDINGS))] if rng.random() < 0.5 else []
    return _summary(facts, endings)


def _wrong_fact(rng: np.random.Generator, post: _Post, other: _Post) -> Fact:
    """Either another post's fact or one of this post's entities with a wrong attribute."""
    if rng.random() < 0.5:
        return other.facts[int(rng.integers(len(other.facts)))]
    entity, attribute = post.facts[int(rng.integers(len(post.facts)))]
    return entity, str(rng.choice([a for a in ATTRIBUTES if a != attribute]))


def _policy_summary(
    rng: np.random.Generator, policy: str, post: _Post, other: _Post, reference: str
) -> str:
    facts, n = post.facts, len(post.facts)
    if policy == "ref":  # the human-written reference, as in OpenAI's comparisons
        return reference
    if policy == "full":
        return _summary(facts)
    if policy == "most":
        return _summary(_ordered_subset(rng, facts, max(1, n - 1)))
    if policy == "half":
        return _summary(_ordered_subset(rng, facts, (n + 1) // 2))
    if policy == "single":
        return _summary(_ordered_subset(rng, facts, 1))
    if policy == "verbose":  # every fact, drowned in filler: long but not better
        fillers = rng.choice(FILLERS, size=int(rng.integers(2, 4)), replace=False)
        return _summary(facts, [str(f) for f in fillers])
    if policy == "confused":  # some own facts mixed with wrong ones
        stated = _ordered_subset(rng, facts, max(1, n // 2))
        for _ in range(int(rng.integers(1, 3))):
            stated.insert(int(rng.integers(0, len(stated) + 1)), _wrong_fact(rng, post, other))
        return _summary(stated)
    if policy == "off_topic":  # a good summary of another post
        return _summary(other.facts)
    raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")


def _split_of(rng: np.random.Generator, n_posts: int, fractions: dict[str, float]) -> list[str]:
    counts = np.floor(np.array([fractions[s] for s in TLDR_SPLITS]) * n_posts).astype(int)
    counts[0] += n_posts - counts.sum()
    splits = np.repeat(np.array(TLDR_SPLITS), counts)
    return [str(s) for s in rng.permutation(splits)]


def bradley_terry_prob(gold_0: np.ndarray, gold_1: np.ndarray, temperature: float) -> np.ndarray:
    """P(choice = 0) under Bradley-Terry on gold: sigmoid((gold_0 - gold_1) / temperature)."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(gold_0) - np.asarray(gold_1)) / temperature))


def bayes_optimal_accuracy(gold_0: np.ndarray, gold_1: np.ndarray, temperature: float) -> float:
    """Expected accuracy of the best possible predictor (one that knows gold) on these labels."""
    p = bradley_terry_prob(gold_0, gold_1, temperature)
    return float(np.mean(np.maximum(p, 1.0 - p))) if len(p) else float("nan")


def generate_world(out_dir: str | os.PathLike, config: WorldConfig, *, seed: int) -> dict:
    """Write the synthetic world's raw files under `out_dir`; return (and write) its manifest.

    Deterministic in (`config`, `seed`). The manifest lists every file with its size and sha256
    and records the world's parameters, including the label temperature that prepare needs for
    the Bayes-optimal accuracy.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    splits = _split_of(rng, config.n_posts, config.split_fractions)
    posts = [_make_post(rng, i, config, splits[i]) for i in range(config.n_posts)]
    gold = GoldReward({p.id: p.facts for p in posts})
    pairs = [(a, b) for i, a in enumerate(POLICIES) for b in POLICIES[i + 1 :]]
    workers = [f"synthetic_worker_{k:02d}" for k in range(config.n_workers)]

    tldr_lines = {s: [] for s in TLDR_SPLITS}
    batches = [[] for _ in range(config.n_batches)]
    n_comparisons = 0
    for index, post in enumerate(tqdm(posts, desc="synthetic world", unit="post")):
        other = posts[(index + int(rng.integers(1, len(posts)))) % len(posts)]
        reference = _reference(rng, post)
        tldr_lines[post.split].append(
            {
                "id": post.id,
                "subreddit": post.subreddit,
                "title": post.title,
                "post": post.post,
                "summary": reference,
            }
        )
        texts = {p: _policy_summary(rng, p, post, other, reference) for p in POLICIES}
        gold_of = {p: gold.components(post.id, t)[-1] for p, t in texts.items()}
        info = {"id": post.id, "post": post.post, "title": post.title, "subreddit": post.subreddit}
        # Identical texts (e.g. "ref" equal to "full") make no comparison; the pairs come in a
        # random order and the first distinct ones are kept.
        distinct = [
            pairs[i]
            for i in rng.permutation(len(pairs))
            if texts[pairs[i][0]] != texts[pairs[i][1]]
        ]
        for pair in distinct[: config.comparisons_per_post]:
            pair = list(pair)
            rng.shuffle(pair)
            p0 = float(
                bradley_terry_prob(gold_of[pair[0]], gold_of[pair[1]], config.label_temperature)
            )
            choice = 0 if rng.random() < p0 else 1
            batch = n_comparisons % config.n_batches
            batches[batch].append(
                {
                    "info": info,
                    "split": COMPARISON_SPLIT[post.split],
                    "summaries": [{"text": texts[p], "policy": p, "note": None} for p in pair],
                    "choice": choice,
                    "worker": workers[int(rng.integers(len(workers)))],
                    "batch": f"batch{3 + batch}",
                    "extra": {"confidence": int(round(1 + 8 * abs(2 * p0 - 1)))},
                }
            )
            n_comparisons += 1

    files = {f"datasets/tldr_3_filtered/{s}.jsonl": lines for s, lines in tldr_lines.items()}
    files |= {f"dataset/comparisons/batch{3 + b}.json": lines for b, lines in enumerate(batches)}
    files["gold.jsonl"] = [{"id": p.id, "facts": [list(f) for f in p.facts]} for p in posts]
    entries = {}
    for name, lines in files.items():
        path = out_dir / name
        write_text(path, "".join(json.dumps(line) + "\n" for line in lines))
        entries[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {
        "source": "synthetic",
        "seed": seed,
        "world": asdict(config),
        "policies": list(POLICIES),
        "gold": {
            "WRONG": GoldReward.WRONG,
            "REPEAT": GoldReward.REPEAT,
            "EXTRA": GoldReward.EXTRA,
            "FREE": GoldReward.FREE,
        },
        "files": entries,
    }
    write_json(out_dir / "manifest.json", manifest)
    log.info("synthetic world: %d posts, %d comparisons in %s", len(posts), n_comparisons, out_dir)
    return manifest

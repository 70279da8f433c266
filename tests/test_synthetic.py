"""The synthetic TL;DR world: determinism, raw formats, the gold reward and its labels."""

import json

import numpy as np
import pytest

from rewardcond.data.synthetic import (
    POLICIES,
    GoldReward,
    WorldConfig,
    bayes_optimal_accuracy,
    bradley_terry_prob,
    generate_world,
)

SMALL = dict(n_posts=60, comparisons_per_post=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    manifest = generate_world(out, WorldConfig(**SMALL), seed=7)
    return out, manifest


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    out, manifest = world
    again = generate_world(tmp_path / "a", WorldConfig(**SMALL), seed=7)
    other = generate_world(tmp_path / "b", WorldConfig(**SMALL), seed=8)
    assert again["files"] == manifest["files"]
    assert other["files"]["gold.jsonl"]["sha256"] != manifest["files"]["gold.jsonl"]["sha256"]


def test_raw_files_have_openai_layout_and_sizes(world):
    out, manifest = world
    assert sorted(manifest["files"]) == [
        "dataset/comparisons/batch3.json",
        "dataset/comparisons/batch4.json",
        "dataset/comparisons/batch5.json",
        "datasets/tldr_3_filtered/test.jsonl",
        "datasets/tldr_3_filtered/train.jsonl",
        "datasets/tldr_3_filtered/valid.jsonl",
        "gold.jsonl",
    ]
    tldr = {
        s: _lines(out / f"datasets/tldr_3_filtered/{s}.jsonl") for s in ("train", "valid", "test")
    }
    assert {s: len(v) for s, v in tldr.items()} == {"train": 48, "valid": 6, "test": 6}
    assert set(tldr["train"][0]) == {"id", "subreddit", "title", "post", "summary"}
    comparisons = [r for b in (3, 4, 5) for r in _lines(out / f"dataset/comparisons/batch{b}.json")]
    assert len(comparisons) == 60 * 4
    first = comparisons[0]
    assert set(first) == {"info", "split", "summaries", "choice", "worker", "batch", "extra"}
    assert set(first["info"]) == {"id", "post", "title", "subreddit"}
    assert set(first["summaries"][0]) == {"text", "policy", "note"}
    assert {r["split"] for r in comparisons} == {"train", "valid1", "valid2"}
    assert all(r["summaries"][0]["text"] != r["summaries"][1]["text"] for r in comparisons)
    assert {s["policy"] for r in comparisons for s in r["summaries"]} == set(POLICIES)
    # every text renders through OpenAI's template and starts a completion with a space
    for record in tldr["train"]:
        assert "{" not in record["post"] + record["title"]
        assert record["summary"].startswith(" ") and record["post"].isascii()


def test_good_summaries_copy_the_posts_fact_sentences_in_order(world):
    out, _ = world
    record = _lines(out / "datasets/tldr_3_filtered/train.jsonl")[0]
    gold = GoldReward.load(out / "gold.jsonl")
    sentences = [f"my {e} is {a}." for e, a in gold.facts[record["id"]]]
    positions = [record["post"].index(s) for s in sentences]
    assert positions == sorted(positions)
    assert gold.score([record["id"]], [" " + " ".join(sentences)])[0] == 1.0


def test_gold_rewards_own_facts_and_penalises_the_rest():
    gold = GoldReward({"a": [("car", "broken"), ("boss", "angry")], "b": [("dog", "sick")]})
    cases = {
        " my car is broken. my boss is angry.": 1.0,
        " My Car is broken.": 0.5,
        "": 0.0,
        " my dog is sick.": -0.2,  # another post's fact: nothing covered, one wrong
        " my car is broken. my boss is sad.": 0.5 - 0.2,  # wrong attribute
        " my car is broken. my car is broken.": 0.5 - 0.1,  # repetition covers nothing new
        " my car is broken. what should i do?": 0.5,  # four extra words are free
        " my car is broken. i do not know what to do at all.": 0.5 - 0.02 * 5,  # nine extra words
    }
    scores = gold.score(["a"] * len(cases), list(cases))
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, list(cases.values()))
    assert gold.score(["b"], [" my car is broken. my boss is angry."])[0] == pytest.approx(-0.4)
    with pytest.raises(KeyError, match="'zzz' has no gold facts"):
        gold.score(["zzz"], ["x"])
    with pytest.raises(ValueError, match="2 post_ids but 1 texts"):
        gold.score(["a", "b"], ["x"])


def test_gold_is_not_length(world):
    out, _ = world
    gold = GoldReward.load(out / "gold.jsonl")
    texts, policies, post_ids = [], [], []
    for record in _lines(out / "dataset/comparisons/batch3.json"):
        for summary in record["summaries"]:
            texts.append(summary["text"])
            policies.append(summary["policy"])
            post_ids.append(record["info"]["id"])
    scores = gold.score(post_ids, texts)
    mean = {p: scores[np.array(policies) == p].mean() for p in POLICIES}
    assert mean["full"] == 1.0
    assert mean["full"] > mean["verbose"] > mean["half"] > mean["single"] > mean["confused"]
    assert 0.8 < mean["ref"] < 1.0
    assert mean["off_topic"] < 0
    lengths = np.array([len(t.split()) for t in texts])
    assert abs(np.corrcoef(lengths, scores)[0, 1]) < 0.8


def test_labels_follow_bradley_terry_on_gold(tmp_path):
    manifest = generate_world(
        tmp_path, WorldConfig(n_posts=400, comparisons_per_post=6, label_temperature=0.3), seed=1
    )
    gold = GoldReward.load(tmp_path / "gold.jsonl")
    g0, g1, choices = [], [], []
    for name in manifest["files"]:
        if name.startswith("dataset/comparisons/"):
            for record in _lines(tmp_path / name):
                texts = [s["text"] for s in record["summaries"]]
                g0_, g1_ = gold.score([record["info"]["id"]] * 2, texts)
                g0.append(g0_)
                g1.append(g1_)
                choices.append(record["choice"])
    p0 = bradley_terry_prob(np.array(g0), np.array(g1), 0.3)
    # the number of choice-0 labels matches its expectation within 4 standard deviations
    expected, sd = p0.sum(), np.sqrt((p0 * (1 - p0)).sum())
    assert abs((np.array(choices) == 0).sum() - expected) < 4 * sd
    accuracy = bayes_optimal_accuracy(np.array(g0), np.array(g1), 0.3)
    assert accuracy == pytest.approx(np.maximum(p0, 1 - p0).mean())


def test_bradley_terry_and_bayes_accuracy_values():
    assert bradley_terry_prob(np.array([1.0]), np.array([1.0]), 0.1)[0] == 0.5
    assert bradley_terry_prob(np.array([0.3]), np.array([0.2]), 0.1)[0] == pytest.approx(
        1 / (1 + np.exp(-1))
    )
    assert bayes_optimal_accuracy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), 0.5) == pytest.approx(
        1 / (1 + np.exp(-2))
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(facts_min=4, facts_max=3), "facts_min <= facts_max"),
        (dict(facts_max=11), "exceeds the entities"),
        (dict(split_fractions={"train": 0.5, "valid": 0.5}), "needs keys"),
        (dict(split_fractions={"train": 0.5, "valid": 0.3, "test": 0.3}), "must sum to 1"),
        (dict(label_temperature=0.0), "label_temperature must be > 0"),
        (dict(n_posts=1), "n_posts must be >= 2"),
    ],
)
def test_world_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)

"""Per-row metrics and the scoring of generations and references (rewardcond.evaluation)."""

import json
import math
import socket

import numpy as np
import pandas as pd
import pytest
from rouge_score import rouge_scorer

from rewardcond.evaluation.generations import evaluate_generations, evaluate_references
from rewardcond.evaluation.metrics import ROUGE_TYPES, distinct_n, rouge_scores, win_indicator
from rewardcond.evaluation.summary import read_benchmark_seconds
from rewardcond.evaluation.targets import load_targets
from rewardcond.tables import GENERATION_COLUMNS

PROMPTS = pd.DataFrame(
    {
        "post_id": ["a", "b"],
        "subreddit": ["cats", "dogs"],
        "title": ["t1", "t2"],
        "post": ["my cat is grey . my cat sleeps .", "my dog is loud ."],
        "reference": [" grey cat sleeps", " loud dog"],
    }
)


class WordCountScorer:
    """Toy reward model: number of words; records what it was asked to score."""

    def __init__(self):
        self.calls = []

    def score(self, posts, summaries):
        self.calls.append((posts, summaries))
        return np.array([len(text.split()) for text in summaries], dtype=float)


class ToyGold:
    """Toy gold: 1 per word of the summary that occurs in a fixed vocabulary of the post."""

    VOCAB = {"a": {"grey", "cat", "sleeps"}, "b": {"loud", "dog"}}

    def score(self, post_ids, texts):
        return np.array(
            [
                sum(w in self.VOCAB[p] for w in t.split())
                for p, t in zip(post_ids, texts, strict=True)
            ],
            dtype=float,
        )


def generations(texts_by_post):
    rows = []
    for i, (post_id, text) in enumerate(texts_by_post):
        rows.append(
            {
                "method": "scalar",
                "post_id": post_id,
                "target_name": "q50",
                "target_reward": 0.5,
                "sample": i,
                "text": text,
                "n_tokens": len(text.split()),
                "finished": True,
                "n_candidates": 1,
            }
        )
    return pd.DataFrame(rows)


def test_rouge_is_offline_and_matches_rouge_score(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    predictions = ["the grey cat sleeps on the mat", "a loud dog barks"]
    references = ["the grey cat is sleeping on a mat", "the dog is loud"]
    scores = rouge_scores(predictions, references)
    direct = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        expected = direct.score(reference, prediction)
        for key in ROUGE_TYPES:
            assert scores[key][i] == pytest.approx(expected[key].fmeasure, abs=1e-12)
    # the, grey, cat, sleep(s|ing), on, mat: 6 of 7 predicted and 6 of 8 reference words.
    assert scores["rouge1"][0] == pytest.approx(2 * (6 / 7) * (6 / 8) / (6 / 7 + 6 / 8))


def test_rouge_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge_scores(["a", "b"], ["a"])


def test_distinct_n_counts_unique_word_ngrams():
    texts = ["the cat the cat", "The dog"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 6)  # the, cat, dog of 6 words
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # (the cat) x2, (cat the), (the dog)
    assert math.isnan(distinct_n(["one"], 2))


def test_win_indicator_counts_ties_as_half():
    wins = win_indicator([2.0, 1.0, 1.0, np.nan], [1.0, 1.0, 2.0, 0.0])
    np.testing.assert_array_equal(wins[:3], [1.0, 0.5, 0.0])
    assert np.isnan(wins[3])
    assert np.nanmean(wins) == pytest.approx(0.5)


def test_evaluate_generations_adds_reward_gold_and_rouge():
    scorer = WordCountScorer()
    frame = generations([("a", " grey cat"), ("a", " grey cat"), ("b", " loud dog barks")])
    evaluated = evaluate_generations(frame, PROMPTS, scorer=scorer, gold=ToyGold())
    assert list(evaluated.columns) == [*GENERATION_COLUMNS, "reward", "gold", *ROUGE_TYPES]
    assert evaluated["reward"].tolist() == [2.0, 2.0, 3.0]
    assert evaluated["gold"].tolist() == [2.0, 2.0, 2.0]
    # The repeated (post, summary) pair is scored once, with its own post.
    ((posts, summaries),) = scorer.calls
    assert summaries == [" grey cat", " loud dog barks"]
    assert posts[1] == {"subreddit": "dogs", "title": "t2", "post": "my dog is loud ."}
    assert evaluated["rouge1"].tolist() == pytest.approx([0.8, 0.8, 0.8])
    no_gold = evaluate_generations(frame, PROMPTS, scorer=WordCountScorer())
    assert no_gold["gold"].isna().all()


def test_evaluate_generations_rejects_bad_input():
    frame = generations([("zzz", " text")])
    with pytest.raises(ValueError, match=r"post_id \['zzz'\] \(1\) not in the eval prompts"):
        evaluate_generations(frame, PROMPTS, scorer=WordCountScorer())
    with pytest.raises(ValueError, match=r"gen.parquet: missing columns \['finished'\]"):
        evaluate_generations(
            frame.drop(columns="finished"), PROMPTS, scorer=WordCountScorer(), where="gen.parquet"
        )
    twice = generations([("a", " x"), ("a", " y")]).assign(sample=0)
    with pytest.raises(
        ValueError, match=r"1 duplicated rows of \['method', 'post_id', 'target_name'"
    ):
        evaluate_generations(twice, PROMPTS, scorer=WordCountScorer())
    no_reference = PROMPTS.assign(reference=[" x", None])
    with pytest.raises(
        ValueError, match=r"1 eval prompts have no reference summary \(post_id \['b'\]"
    ):
        evaluate_generations(generations([("a", " x")]), no_reference, scorer=WordCountScorer())

    class SkippingScorer:
        """Like load_scorer(on_empty="skip"), but also fails on the word 'nan'."""

        def score(self, posts, summaries):
            return np.array([np.nan if t.strip() in ("", "nan") else 1.0 for t in summaries])

    with pytest.raises(ValueError, match=r"1 non-finite rewards for non-empty summaries"):
        evaluate_generations(generations([("a", " nan")]), PROMPTS, scorer=SkippingScorer())
    evaluated = evaluate_generations(
        generations([("a", " "), ("b", " dog")]), PROMPTS, scorer=SkippingScorer()
    )
    assert evaluated["reward"].isna().tolist() == [True, False]


def test_evaluate_references_scores_each_prompt_once():
    references = evaluate_references(PROMPTS, scorer=WordCountScorer(), gold=ToyGold())
    assert list(references.columns) == ["post_id", "text", "reward", "gold"]
    assert references["reward"].tolist() == [3.0, 2.0]
    assert references["gold"].tolist() == [3.0, 2.0]


def test_load_targets_validates(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps([{"name": "q50", "value": 1}]))
    with pytest.raises(ValueError, match="entry 0 .* expected an object with keys name"):
        load_targets(path)
    path.write_text(json.dumps([{"name": "q50", "value": 1, "in_range": True}] * 2))
    with pytest.raises(ValueError, match="must be unique"):
        load_targets(path)


def test_read_benchmark_seconds(tmp_path):
    path = tmp_path / "scalar.tsv"
    path.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t100.0\n13.5\t0:00:13\t110.0\n")
    assert read_benchmark_seconds(path) == 13.0
    (tmp_path / "bad.tsv").write_text("x\n1\n")
    with pytest.raises(ValueError, match=r"bad.tsv: missing columns \['s'\]"):
        read_benchmark_seconds(tmp_path / "bad.tsv")

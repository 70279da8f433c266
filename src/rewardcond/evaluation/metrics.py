"""Per-summary metrics: ROUGE against the reference, emptiness, distinct-n over a set of
summaries, and the win indicator against the reference summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROUGE_PATH = Path(__file__).parents[1] / "metrics" / "rouge"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def load_rouge():
    """The ROUGE metric shipped with the package, loaded by path (works offline)."""
    import evaluate

    return evaluate.load(str(ROUGE_PATH))


def rouge_scores(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L F-measure of each prediction against its reference, through `evaluate`."""
    if len(predictions) != len(references):
        raise ValueError(
            f"rouge_scores: {len(predictions)} predictions but {len(references)} references"
        )
    if not predictions:
        return {key: np.zeros(0) for key in ROUGE_TYPES}
    scores = load_rouge().compute(
        predictions=list(predictions),
        references=list(references),
        rouge_types=list(ROUGE_TYPES),
        use_stemmer=use_stemmer,
        use_aggregator=False,
    )
    return {key: np.asarray(scores[key], dtype=np.float64) for key in ROUGE_TYPES}


def is_empty(texts: Sequence[str]) -> np.ndarray:
    """True for each text that is empty or whitespace only (no summary was written)."""
    return np.array([not text.strip() for text in texts], dtype=bool)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique word n-grams / all word n-grams over a set of texts.

    Words are lower-cased, whitespace-separated. NaN when the texts hold no n-gram at all.
    """
    ngrams = [
        tuple(words[i : i + n])
        for text in texts
        for words in [text.lower().split()]
        for i in range(len(words) - n + 1)
    ]
    return len(set(ngrams)) / len(ngrams) if ngrams else float("nan")


def win_indicator(reward: Sequence[float], reference_reward: Sequence[float]) -> np.ndarray:
    """1 where a summary out-scores the reference, 0.5 on a tie, 0 below; NaN where either is."""
    reward = np.asarray(reward, dtype=np.float64)
    reference_reward = np.asarray(reference_reward, dtype=np.float64)
    wins = 0.5 * (1.0 + np.sign(reward - reference_reward))
    return np.where(np.isnan(reward) | np.isnan(reference_reward), np.nan, wins)

"""`bon<N>`: best-of-N, the inference-time baseline (no training of its own).

N summaries are sampled per prompt from the `sft` model, the reward model scores them, and the
highest scoring one is kept. Its generations record `n_candidates = N`, so that its N-fold
generation cost shows next to the methods that sample once.
"""

from __future__ import annotations

import numpy as np


def pick_best(scores: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the best of each consecutive group of `n` candidates (ties: the first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if n < 1 or scores.ndim != 1 or len(scores) % n:
        raise ValueError(
            f"expected a flat array of groups of n={n} scores, got shape {scores.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).sum())} candidate scores are NaN")
    groups = scores.reshape(-1, n)
    return np.arange(len(groups)) * n + groups.argmax(axis=1)

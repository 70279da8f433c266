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


def best_of_n(
    model,
    tokenizer,
    prompts: list[str],
    posts: list[dict],
    scorer,
    *,
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    seed: int,
):
    """Sample `n` completions per prompt and keep the one `scorer` rates highest.

    Returns (best completions, their scores, tokens generated over all candidates per prompt);
    an empty candidate scores -inf, so it is kept only when all `n` are empty.
    `scorer.score(posts, summaries)` gives raw rewards; `posts` are the template fields of each
    prompt's post (subreddit, title, post), so the reward model sees the full post.
    """
    from rewardcond.generation import complete

    candidates = complete(
        model,
        tokenizer,
        [prompt for prompt in prompts for _ in range(n)],
        max_new_tokens=max_new_tokens,
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        batch_size=batch_size,
        seed=seed,
    )
    # An empty candidate (EOS first) cannot be scored; it loses to any scored one.
    scored = np.flatnonzero([bool(c.text.strip()) for c in candidates])
    scores = np.full(len(candidates), -np.inf)
    scores[scored] = scorer.score(
        [posts[i // n] for i in scored], [candidates[i].text for i in scored]
    )
    best = pick_best(scores, n)
    generated = np.array([len(c.token_ids) for c in candidates]).reshape(-1, n).sum(axis=1)
    return [candidates[i] for i in best], scores[best], generated

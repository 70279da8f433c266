"""`bon<N>`: best-of-N, the inference-time baseline (no training of its own).

N summaries are sampled per prompt from the `sft` model, the reward model scores them, and the
highest scoring one is kept. Its generations record `n_candidates = N`, so that its N-fold
generation cost shows next to the methods that sample once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from rewardcond.methods.base import Method, register

log = logging.getLogger(__name__)


@register
class BestOfNMethod(Method):
    """Best of `n` sampled summaries of the `sft` model under the reward model; `bon4` is n = 4.

    Options (`method_options.bon`, shared by every N): `temperature` and `top_p` of the
    sampling (defaults 1.0, 1.0). The sampling is seeded; the summaries are `generate`'s length.
    """

    name = "bon<N>"
    name_pattern = r"bon(?P<n>[1-9][0-9]*)"
    needs_scorer = True

    def __init__(self, n: int | str, temperature: float = 1.0, top_p: float = 1.0) -> None:
        self.n_candidates = int(n)
        self.name = f"bon{self.n_candidates}"
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(
                "method_options.bon needs temperature > 0 and 0 < top_p <= 1, got "
                f"temperature={temperature}, top_p={top_p}"
            )
        self.temperature = temperature
        self.top_p = top_p

    def options(self) -> dict[str, Any]:
        return {"n": self.n_candidates, "temperature": self.temperature, "top_p": self.top_p}

    def build_model(self, base_path, trainset):
        raise TypeError(f"{self.name} trains nothing: it samples from the sft model")

    def complete(
        self, model, tokenizer, prompts, target_rewards, *, posts, generation, seed, scorer=None
    ):
        if scorer is None:
            raise ValueError(f"{self.name} needs the reward model to pick among its candidates")
        best, scores, generated = best_of_n(
            model,
            tokenizer,
            prompts,
            posts,
            scorer,
            n=self.n_candidates,
            max_new_tokens=generation["max_new_tokens"],
            temperature=self.temperature,
            top_p=self.top_p,
            batch_size=generation["batch_size"],
            seed=seed,
        )
        log.info(
            "%s: %d prompts, %.1f tokens sampled per prompt, mean best reward %.4f",
            self.name,
            len(prompts),
            generated.mean(),
            scores[np.isfinite(scores)].mean() if np.isfinite(scores).any() else float("nan"),
        )
        return best


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
    from rewardcond.decoding import complete

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

"""KL estimators: Monte Carlo over the policy's samples, the exact sum for tiny vocabularies,
best-of-N's analytic bound and estimate (see `rewardcond.kl`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from rewardcond.batching import (
    IGNORE_INDEX,
    RewardConditionedCollator,
    prompt_token_ids,
    require_eos_token,
)
from rewardcond.decoding import complete
from rewardcond.kl.logprobs import check_same_vocabulary, completion_logprobs
from rewardcond.modeling import RewardConditionedLM

# --- the Monte Carlo estimator ----------------------------------------------------------------


def sample_log_ratios(
    policy,
    policy_tokenizer,
    policy_prompts: Sequence[str],
    reference,
    reference_tokenizer,
    reference_prompts: Sequence[str],
    target_rewards: Sequence[float] | None = None,
    *,
    samples: int,
    max_new_tokens: int,
    batch_size: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """Sample `samples` completions per prompt from the policy and score them under both models.

    The policy completes `policy_prompts[i]` (at `target_rewards[i]` when it is a
    `RewardConditionedLM`) by ancestral sampling at temperature 1, top_p 1, no top-k (the
    policy's own distribution), seeded with `seed`, until EOS or `max_new_tokens`; the reference
    (pi_sft, a plain causal LM) scores the same tokens after `reference_prompts[i]`.

    Returns:
        One row per sample: `prompt` (index into the prompts), `sample`, `n_tokens` (without
        EOS), `finished` (ended with EOS), `logp_policy`, `logp_reference` (nats, over the
        completion and its EOS when finished), `log_ratio` = their difference, `unsupported`
        (a token the reference cannot emit, so `logp_reference` = -inf).

    When `reference is policy` with the same prompts and no target, the reference's
    log-probabilities are the policy's (no second pass): the log-ratios are exactly 0.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1 (evaluate.kl_samples), got {samples}")
    if len(reference_prompts) != len(policy_prompts):
        raise ValueError(
            f"reference_prompts: expected one per policy prompt ({len(policy_prompts)}), "
            f"got {len(reference_prompts)}"
        )
    if isinstance(reference, RewardConditionedLM):
        raise ValueError("the reference (sft) must be a plain causal LM, not a RewardConditionedLM")
    check_same_vocabulary(policy_tokenizer, reference_tokenizer)
    eos = require_eos_token(policy_tokenizer)
    index = np.repeat(np.arange(len(policy_prompts)), samples)
    repeated = [policy_prompts[i] for i in index]
    rewards = None if target_rewards is None else np.asarray(target_rewards, np.float64)[index]
    completions = complete(
        policy,
        policy_tokenizer,
        repeated,
        rewards,
        max_new_tokens=max_new_tokens,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        batch_size=batch_size,
        seed=seed,
    )
    scored = [c.token_ids + [eos] if c.finished else list(c.token_ids) for c in completions]
    logp_policy = completion_logprobs(
        policy, policy_tokenizer, repeated, scored, rewards, batch_size=batch_size
    )
    same = (
        reference is policy
        and list(reference_prompts) == list(policy_prompts)
        and target_rewards is None
    )
    if same:
        logp_reference = logp_policy.copy()
    else:
        logp_reference = completion_logprobs(
            reference,
            reference_tokenizer,
            [reference_prompts[i] for i in index],
            scored,
            batch_size=batch_size,
        )
    return pd.DataFrame(
        {
            "prompt": index,
            "sample": np.tile(np.arange(samples), len(policy_prompts)),
            "n_tokens": [len(c.token_ids) for c in completions],
            "finished": [c.finished for c in completions],
            "logp_policy": logp_policy,
            "logp_reference": logp_reference,
            "log_ratio": logp_policy - logp_reference,
            "unsupported": np.isneginf(logp_reference),
        }
    )


def per_prompt_kl(rows: pd.DataFrame) -> pd.DataFrame:
    """The Monte Carlo estimate of KL(pi || pi_sft) per prompt, from `sample_log_ratios` rows.

    What it is: `kl` = (1/K) sum_k [log pi(y_k | x) - log pi_sft(y_k | x)] over the K samples
    y_k ~ pi(. | x) of the prompt (the "k1" estimator in Schulman 2020, "Approximating KL
    divergence", http://joschu.net/blog/kl-approx.html; the sequence-level KL that Gao et al.
    2022 report for their policies). Unit: nats per sequence (summed over the completion's
    tokens and its EOS), not per token.

    Bias and variance: unbiased for the KL between the two distributions of completions
    truncated at `max_new_tokens` (a completion cut there is the event "these tokens and no EOS
    yet", a proper outcome under both models), not for the untruncated KL. Each term can be
    negative, so the estimate can be below 0 on few samples though the KL is not; its variance
    is Var[log pi - log pi_sft] / K, which grows with the KL (it is 0 only when pi = pi_sft).
    `kl_k3` is Schulman's k3, (r - 1) - log r with r = pi_sft / pi: also unbiased (when pi_sft
    covers pi), never negative per sample and of lower variance when pi is close to pi_sft, but
    heavy-tailed when r is large, i.e. when pi_sft likes a sample far more than pi does;
    reported next to `kl`, which is the estimate used.

    Returns:
        One row per prompt (its index in `prompt`): `n_samples`, `kl`, `kl_k3`, `logp_policy`
        and `logp_sft` (means), `mean_tokens`, `n_finished`, `n_unsupported`; a prompt with
        an unsupported sample has `kl` = `kl_k3` = inf.
    """
    k3 = np.expm1(-rows["log_ratio"]) + rows["log_ratio"]
    grouped = rows.assign(k3=k3).groupby("prompt", sort=True)
    return pd.DataFrame(
        {
            "n_samples": grouped.size(),
            "kl": grouped["log_ratio"].mean(),
            "kl_k3": grouped["k3"].mean(),
            "logp_policy": grouped["logp_policy"].mean(),
            "logp_sft": grouped["logp_reference"].mean(),
            "mean_tokens": grouped["n_tokens"].mean(),
            "n_finished": grouped["finished"].sum(),
            "n_unsupported": grouped["unsupported"].sum(),
        }
    ).reset_index()


def exact_sequence_kl(
    policy,
    policy_tokenizer,
    policy_prompt: str,
    reference,
    reference_tokenizer,
    reference_prompt: str,
    target_reward: float | None = None,
    *,
    max_new_tokens: int,
    max_prefixes: int = 100_000,
) -> float:
    """The exact KL(pi || pi_sft) of completions truncated at `max_new_tokens`, in nats, by
    enumerating every completion: sum over y of pi(y) [log pi(y) - log pi_sft(y)].

    The outcomes are the sequences ending in EOS within `max_new_tokens` tokens and those
    without EOS of exactly `max_new_tokens` tokens, the distribution that `sample_log_ratios`
    samples. Feasible for tiny vocabularies only: the prefixes expanded number
    sum_{t < max_new_tokens} (V - 1)^t.

    Raises:
        ValueError: naming `max_prefixes` when the enumeration would expand more prefixes.
    """
    eos = require_eos_token(policy_tokenizer)
    vocab = policy.get_input_embeddings().num_embeddings
    reference_vocab = reference.get_input_embeddings().num_embeddings
    needed = sum((vocab - 1) ** t for t in range(max_new_tokens))
    if needed > max_prefixes:
        raise ValueError(
            f"max_prefixes={max_prefixes}: enumerating {max_new_tokens} tokens over a vocabulary "
            f"of {vocab} expands {needed} prefixes"
        )
    prefixes: list[list[int]] = [[]]
    weights = np.array([0.0])  # log pi(prefix)
    ratios = np.array([0.0])  # log pi(prefix) - log pi_sft(prefix)
    total = 0.0
    for step in range(max_new_tokens):
        policy_next = _next_token_logprobs(
            policy, policy_tokenizer, policy_prompt, prefixes, target_reward
        )[:, :vocab]
        reference_next = _next_token_logprobs(
            reference, reference_tokenizer, reference_prompt, prefixes, None
        )
        if reference_vocab < vocab:
            missing = torch.full((len(prefixes), vocab - reference_vocab), -math.inf)
            reference_next = torch.cat([reference_next[:, :reference_vocab], missing], dim=1)
        reference_next = reference_next[:, :vocab]
        log_p = weights[:, None] + policy_next.double().numpy()
        log_ratio = ratios[:, None] + (policy_next - reference_next).double().numpy()
        probability = np.exp(log_p)
        terminal = np.zeros(vocab, dtype=bool)
        terminal[eos] = True
        if step == max_new_tokens - 1:
            terminal[:] = True
        contribution = probability[:, terminal] * log_ratio[:, terminal]
        # 0 * inf is 0: an outcome the policy never emits adds nothing.
        total += float(np.where(probability[:, terminal] > 0, contribution, 0.0).sum())
        prefixes = [prefix + [token] for prefix in prefixes for token in np.flatnonzero(~terminal)]
        weights = log_p[:, ~terminal].reshape(-1)
        ratios = log_ratio[:, ~terminal].reshape(-1)
    return total


def _next_token_logprobs(model, tokenizer, prompt, prefixes, target_reward) -> torch.Tensor:
    """`(len(prefixes), vocab)` log-probabilities of the token after prompt + each prefix."""
    collator = RewardConditionedCollator(tokenizer, padding_side="left")
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    rows = []
    for start in range(0, len(prefixes), 1024):
        chunk = prefixes[start : start + 1024]
        features = [
            {
                "input_ids": prompt_ids + [int(t) for t in p],
                "attention_mask": [1] * (len(prompt_ids) + len(p)),
                "labels": [IGNORE_INDEX] * (len(prompt_ids) + len(p)),
            }
            for p in chunk
        ]
        batch = collator(features)
        mask = batch["attention_mask"]
        extra = {}
        if isinstance(model, RewardConditionedLM):
            extra["target_rewards"] = [target_reward] * len(chunk)
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"].to(model.device),
                attention_mask=mask.to(model.device),
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(model.device),
                logits_to_keep=1,
                **extra,
            ).logits[:, -1]
        rows.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(rows)


# --- best-of-N --------------------------------------------------------------------------------


def best_of_n_kl_bound(n: int) -> float:
    """`log n - (n - 1)/n` nats: the KL of best-of-n from its sampling policy as Stiennon et al.
    2020 (appendix) and Gao et al. 2022 give it, exact only when no two candidates can tie
    (a continuous distribution of rewards); Beirami et al. 2024 (arXiv:2401.01879, Theorem 3.1)
    prove it an upper bound of the KL for every reference policy and reward.

    Raises:
        ValueError: naming n when it is not an integer >= 1.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"best-of-n needs an integer n >= 1, got {n!r}")
    return math.log(n) - (n - 1) / n


def best_of_n_kl_estimate(n: int, log_epsilon: float | np.ndarray) -> np.ndarray:
    """The KL estimator of best-of-n of Beirami et al. 2024 ("Theoretical guarantees on the
    best-of-n alignment policy", arXiv:2401.01879, Sec. 4), in nats:

        KL_n(eps) = (1 - eps)^n [log n + (n - 1) log(1 - eps) - (n - 1)/n]
                    + (1 - (1 - eps)^n) log[(1 - (1 - eps)^n) / eps]

    where eps is the reference policy's probability of the best-of-n outcome (here
    `exp(log_epsilon)`, pi_sft of the kept summary). It is the exact KL when the reference puts
    mass eps on the best outcome and spreads the rest without atoms, and it never exceeds
    `best_of_n_kl_bound(n)`, to which it tends as eps -> 0; at eps = 1 (a deterministic
    reference) it is 0. tests/test_kl.py checks it against the exact KL of best-of-n computed
    from its probability mass function (F(y)^n - F(y-)^n, F the reference's CDF by reward).
    Computed in log space, so that sequence probabilities of e^-100 are exact. Returns an array
    of the shape of `log_epsilon`.

    For sequences eps is tiny unless sft repeats itself, so the estimate is at the bound; it
    falls below it where sft's own samples often coincide (a near-deterministic sft).
    """
    bound = best_of_n_kl_bound(n)
    log_epsilon = np.minimum(np.asarray(log_epsilon, dtype=np.float64), 0.0)
    epsilon = np.exp(log_epsilon)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rest = np.log1p(-epsilon)  # log(1 - eps); -inf at eps = 1
        rest_n = np.exp(n * log_rest)  # (1 - eps)^n
        top = -np.expm1(n * log_rest)  # 1 - (1 - eps)^n, exact for tiny eps
        continuous = np.where(
            rest_n > 0, rest_n * (math.log(n) + (n - 1) * log_rest - (n - 1) / n), 0.0
        )
        atom = np.where(top > 0, top * (np.log(top) - log_epsilon), 0.0)
    # Rounding can put a value a hair above the bound it provably respects.
    return np.minimum(continuous + atom, bound)

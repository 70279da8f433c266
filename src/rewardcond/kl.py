"""KL divergence of a method's policy from the starting policy `sft`, in nats per sequence.

The field compares alignment methods on reward *at a given distance from the starting policy*
(Gao, Schulman and Hilton 2022, "Scaling laws for reward model overoptimization", who plot gold
reward against d = sqrt(KL(pi || pi_init))). This module estimates that distance for every
method and condition on the evaluation prompts:

- `completion_logprobs`: log pi(y | x) of completions under a causal LM, summed over the
  completion's tokens and its EOS (when it has one), the prompt not counted; for a
  `RewardConditionedLM` at a given target reward (its slot), for a plain LM as it is.
- `sample_log_ratios` and `per_prompt_kl`: the Monte Carlo estimate of KL(pi || pi_sft) from the
  policy's own samples (see `per_prompt_kl` for what it is, its unit, bias and variance).
- `best_of_n_kl_bound` and `best_of_n_kl_estimate`: best-of-N, which has no model of its own:
  the analytic `log N - (N - 1)/N` (an upper bound) and the estimator of Beirami et al. 2024.
- `exact_sequence_kl`: the exact KL by enumerating every sequence, for tiny vocabularies (tests).
- `run_kl`, `run_best_of_n_kl`: the stage (rule `kl`): a parquet of per-prompt KL per condition;
  `summarize_kl` gives the mean and a bootstrap interval over prompts per method and condition.

How each method sees its prompt is how it generates (`rewardcond.generate.generate_method`): the
same rendered (truncated) prompt, after the condition's prefix for `tokens` (`<|good|>`) and
`text` (`REWARD: ...`), with the target in the reward slot for `scalar`; `sft`, `dpo` and other
plain methods get the prompt alone. pi_sft always sees the plain prompt: the KL is between the
two policies' distributions of completions of the same post. Both are distributions over token
sequences, so both models must share their tokenizer's ids (checked); a token the policy can
emit and sft cannot (e.g. `tokens`' `<|good|>` in a completion) has log pi_sft = -inf, which
makes that prompt's KL infinite; such samples are counted (`n_unsupported`).

What is measured is the policy's own distribution (temperature 1, top_p 1), as Gao et al.
measure their policies, whatever `generate` decodes with for the tables (greedy in the shipped
configs): a greedy decoder is a point mass, whose KL from sft would be -log pi_sft of its one
output, and is not what this estimates. Best-of-N samples at temperature 1 in both.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rewardcond.artifacts import resolve_device, write_parquet
from rewardcond.batching import (
    IGNORE_INDEX,
    PromptTemplate,
    RewardConditionedCollator,
    completion_token_ids,
    max_text_length,
    prompt_token_ids,
    require_eos_token,
    require_pad_token,
)
from rewardcond.generate import GenerateSettings, render_prompts
from rewardcond.generation import complete
from rewardcond.methods import get_method
from rewardcond.modeling import RewardConditionedLM

log = logging.getLogger(__name__)

KL_COLUMNS = [
    "method",
    "post_id",
    "target_name",
    "target_reward",
    "estimator",
    "n_samples",
    "kl",
    "kl_k3",
    "kl_bound",
    "logp_policy",
    "logp_sft",
    "mean_tokens",
    "n_finished",
    "n_unsupported",
]
#: `estimator` of the rows of a method with a model: the mean of log pi - log pi_sft over the
#: policy's own samples (`per_prompt_kl`).
MONTE_CARLO = "monte_carlo"
#: `estimator` of the best-of-N rows: `best_of_n_kl_estimate` (Beirami et al. 2024, Sec. 4).
BEST_OF_N_ESTIMATE = "best_of_n_beirami"


# --- log-probabilities ------------------------------------------------------------------------


def completion_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[Sequence[int]],
    target_rewards: Sequence[float] | np.ndarray | None = None,
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """log pi(completion | prompt) of each pair, in nats, shape `(len(prompts),)`, float64.

    Args:
        model: a `RewardConditionedLM` (then `target_rewards`, raw reward-model units, one per
            prompt, is required and fills the slot) or a plain causal LM (`target_rewards` None).
        prompts: prompt texts, tokenized as in training and generation (`prompt_token_ids`).
        completions: token ids to score after each prompt: the completion and its EOS if it
            ended with one (`Completion.token_ids + [eos]` when `finished`); at least one each.
        batch_size: rows per forward pass. Rows are left-padded, with positions counted from
            each row's first real token, so the result does not depend on the batching (up to
            fp32 noise).

    Only completion tokens are summed; the prompt is not. A completion token that the model's
    vocabulary does not hold (an id >= its embedding rows) has probability 0: that row is -inf.

    Raises:
        ValueError: naming `target_rewards` (as `complete` does), `completions` (an empty one, or
            a count that differs from the prompts'), or the model's context when a prompt +
            completion is longer than `max_text_length(model)`.
    """
    conditioned = isinstance(model, RewardConditionedLM)
    if conditioned and target_rewards is None:
        raise ValueError("target_rewards is required for a RewardConditionedLM (one per prompt)")
    if not conditioned and target_rewards is not None:
        raise ValueError(
            f"target_rewards must be None for a plain causal LM ({type(model).__name__})"
        )
    if len(completions) != len(prompts):
        raise ValueError(
            f"completions: expected one per prompt ({len(prompts)}), got {len(completions)}"
        )
    if conditioned:
        target_rewards = model.check_target_rewards(target_rewards, len(prompts))
    pad_id = require_pad_token(tokenizer)
    collator = RewardConditionedCollator(tokenizer, padding_side="left")
    vocab = model.get_input_embeddings().num_embeddings
    limit = max_text_length(model)
    features = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        completion = [int(token) for token in completion]
        if not completion:
            raise ValueError(f"completions[{i}] is empty (a completion has at least its EOS)")
        prompt_ids = prompt_token_ids(tokenizer, prompt)
        if len(prompt_ids) + len(completion) > limit:
            raise ValueError(
                f"prompt {i} ({len(prompt_ids)} tokens) + completion ({len(completion)}) exceed "
                f"the model's context of {limit} tokens"
            )
        features.append(
            {
                "input_ids": prompt_ids + completion,
                "attention_mask": [1] * (len(prompt_ids) + len(completion)),
                "labels": [IGNORE_INDEX] * len(prompt_ids) + completion,
            }
        )
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    result = np.empty(len(features), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = collator([features[i] for i in rows])
            unsupported = ((batch["input_ids"] >= vocab) & (batch["attention_mask"] == 1)).any(1)
            input_ids = batch["input_ids"].masked_fill(batch["input_ids"] >= vocab, pad_id)
            mask = batch["attention_mask"]
            # The last `kept` positions hold every completion (left padding aligns the ends).
            kept = int((batch["labels"] != IGNORE_INDEX).sum(1).max())
            extra = {"target_rewards": target_rewards[rows]} if conditioned else {}
            with torch.no_grad():
                logits = model(
                    input_ids=input_ids.to(model.device),
                    attention_mask=mask.to(model.device),
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(model.device),
                    logits_to_keep=kept + 1,
                    **extra,
                ).logits
            logits = logits[:, -(kept + 1) : -1].float()
            targets = input_ids[:, -kept:].to(logits.device)
            scored = (batch["labels"][:, -kept:] != IGNORE_INDEX).to(logits.device)
            token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])
            sums = (token_logprobs[..., 0].double() * scored).sum(-1).cpu().numpy()
            sums[unsupported.numpy()] = -np.inf
            result[rows] = sums
    finally:
        model.train(was_training)
    return result


def check_same_vocabulary(policy_tokenizer, reference_tokenizer, name: str = "policy") -> None:
    """A KL over token sequences needs one id per token for both models: every token of the
    reference's (sft's) tokenizer must have the same id in the policy's (which may add some, as
    `tokens` does).

    Raises:
        ValueError: naming `name` and the first token whose id differs or is missing.
    """
    policy_vocab = policy_tokenizer.get_vocab()
    for token, index in sorted(reference_tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if policy_vocab.get(token) != index:
            raise ValueError(
                f"{name}'s tokenizer gives token {token!r} the id {policy_vocab.get(token)}, "
                f"sft's gives it {index}: KL over token sequences needs the same tokenizer "
                "(train the method from the sft model or from sft's base)"
            )


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


# --- the stage ----------------------------------------------------------------------------------


def run_kl(
    method,
    *,
    model_path: str,
    sft_path: str,
    prompts_path: str,
    targets_path: str,
    output_path: str,
    template: str,
    settings: GenerateSettings,
    samples: int,
    seed: int,
    device: str = "auto",
) -> pd.DataFrame:
    """Rule `kl` for a method with a model: per-prompt KL(pi || pi_sft) at each condition.

    `method` (a `rewardcond.methods.Method`) loads its model from `model_path` and renders each
    condition's prompts as `generate_method` does with the same `settings` (config `generate`:
    `max_new_tokens`, `batch_size`, `max_prompt_tokens`; its decoding settings do not apply, the
    KL samples the policy itself); the sft model from `sft_path` scores the samples after the
    plain prompt. `samples` completions per prompt and condition (config `evaluate.kl_samples`);
    every condition's samples use the same `seed`, so that conditions differ only in their
    condition. Writes and returns `KL_COLUMNS` (one row per prompt and condition, `estimator`
    "monte_carlo", `kl_bound` NaN).
    """
    device = resolve_device(device)
    policy, tokenizer = method.load_model(model_path)
    policy.to(device).eval()
    same_model = os.path.realpath(model_path) == os.path.realpath(sft_path)
    if same_model:
        reference, reference_tokenizer = policy, tokenizer
    else:
        reference, reference_tokenizer = get_method("sft").load_model(sft_path)
        reference.to(device).eval()
    prompts = pd.read_parquet(prompts_path)
    with open(targets_path, encoding="utf-8") as handle:
        conditions = method.conditions(json.load(handle))
    prefix_tokens = max(len(tokenizer(c.prefix)["input_ids"]) for c in conditions)
    budget = min(settings.max_prompt_tokens, max_text_length(policy) - settings.max_new_tokens)
    rendered = render_prompts(prompts, tokenizer, PromptTemplate(template), budget - prefix_tokens)
    frames = []
    for condition in tqdm(conditions, desc=f"kl {method.name}", unit="condition"):
        rewards = None
        if isinstance(policy, RewardConditionedLM):
            rewards = [condition.target_reward] * len(rendered)
        rows = sample_log_ratios(
            policy,
            tokenizer,
            [condition.prefix + prompt for prompt in rendered],
            reference,
            reference_tokenizer,
            rendered,
            rewards,
            samples=samples,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            seed=seed,
        )
        per_prompt = per_prompt_kl(rows)
        frames.append(
            per_prompt.assign(
                method=method.name,
                post_id=prompts["post_id"].to_numpy()[per_prompt["prompt"]],
                target_name=condition.name,
                target_reward=condition.target_reward,
                estimator=MONTE_CARLO,
                kl_bound=np.nan,
            )
        )
        unsupported = int(per_prompt["n_unsupported"].sum())
        if unsupported:
            log.warning(
                "%s at %s: %d of %d samples hold a token sft cannot emit (KL infinite there)",
                method.name,
                condition.name,
                unsupported,
                len(rows),
            )
    return _write(frames, output_path, method.name)


def run_best_of_n_kl(
    method,
    *,
    generations_path: str,
    sft_path: str,
    prompts_path: str,
    output_path: str,
    template: str,
    settings: GenerateSettings,
    device: str = "auto",
) -> pd.DataFrame:
    """Rule `kl` for best-of-N (`bon<N>`), from its generations: per prompt, the analytic bound
    `log N - (N - 1)/N` (`kl_bound`) and the estimate of Beirami et al. 2024 (`kl`, estimator
    "best_of_n_beirami"): `best_of_n_kl_estimate(N, log pi_sft(y | x))` of each kept summary y,
    averaged over the prompt's kept summaries (generate.num_samples of them).

    log pi_sft(y | x) is scored after the prompt `generate_method` gave sft with the same
    `settings` (config `generate`); y is the kept summary's text re-encoded (+ EOS if it
    finished), which is the tokenization sft was trained on but not necessarily the one it
    sampled (text is all a generation keeps), so eps can be a little low (a rare non-canonical
    sample). `kl_k3` and `logp_policy` are NaN:
    best-of-N has no model whose likelihood one could evaluate.

    Raises:
        ValueError: naming method_options.bon when the candidates were not drawn from sft itself
            (temperature and top_p 1), for which both formulas hold; naming the generations file
            when its rows are not this method's or a prompt has none.
    """
    if method.temperature != 1.0 or method.top_p != 1.0:
        raise ValueError(
            f"method_options.bon: temperature={method.temperature}, top_p={method.top_p}; the "
            "best-of-N KL from sft (analytic and estimated) holds for candidates drawn from sft "
            "itself (temperature 1, top_p 1)"
        )
    n = method.n_candidates
    generations = pd.read_parquet(generations_path)
    wrong = sorted(set(generations["method"]) - {method.name}) + sorted(
        set(generations["n_candidates"]) - {n}
    )
    if wrong:
        raise ValueError(f"{generations_path}: rows of {wrong}, expected {method.name} (N = {n})")
    prompts = pd.read_parquet(prompts_path)
    missing = sorted(set(prompts["post_id"]) - set(generations["post_id"]))
    if missing:
        raise ValueError(f"{generations_path}: no generation for post_id {missing[:5]}")
    reference, tokenizer = get_method("sft").load_model(sft_path)
    reference.to(resolve_device(device)).eval()
    budget = min(settings.max_prompt_tokens, max_text_length(reference) - settings.max_new_tokens)
    rendered = render_prompts(prompts, tokenizer, PromptTemplate(template), budget)
    prompt_of = dict(zip(prompts["post_id"], rendered, strict=True))
    generations = generations[generations["post_id"].isin(prompt_of)].reset_index(drop=True)
    eos = require_eos_token(tokenizer)
    completions = [
        completion_token_ids(tokenizer, text) if finished else _text_ids(tokenizer, text)
        for text, finished in zip(generations["text"], generations["finished"], strict=True)
    ]
    logp = completion_logprobs(
        reference,
        tokenizer,
        [prompt_of[post_id] for post_id in generations["post_id"]],
        [ids or [eos] for ids in completions],
        batch_size=settings.batch_size,
    )
    empty = sum(not ids for ids in completions)
    if empty:
        log.warning(
            "%s: %d kept summaries are empty and unfinished; scored as EOS", method.name, empty
        )
    rows = generations.assign(
        kl=best_of_n_kl_estimate(n, logp),
        logp_sft=logp,
        unsupported=np.isneginf(logp),
    )
    grouped = rows.groupby(["post_id", "target_name", "target_reward"], sort=False, dropna=False)
    per_prompt = grouped.agg(
        n_samples=("kl", "size"),
        kl=("kl", "mean"),
        logp_sft=("logp_sft", "mean"),
        mean_tokens=("n_tokens", "mean"),
        n_finished=("finished", "sum"),
        n_unsupported=("unsupported", "sum"),
    ).reset_index()
    frame = per_prompt.assign(
        method=method.name,
        estimator=BEST_OF_N_ESTIMATE,
        kl_k3=np.nan,
        kl_bound=best_of_n_kl_bound(n),
        logp_policy=np.nan,
    )
    return _write([frame], output_path, method.name)


def _text_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _write(frames, output_path, name) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)[KL_COLUMNS].astype(
        {
            "target_reward": "float64",
            "n_samples": "int64",
            "n_finished": "int64",
            "n_unsupported": "int64",
            "kl_bound": "float64",
        }
    )
    write_parquet(output_path, table)
    for row in summarize_kl(table).itertuples(index=False):
        log.info(
            "%s %s: KL %.4f [%.4f, %.4f] nats over %d prompts (bound %s)",
            name,
            row.target_name,
            row.kl,
            row.kl_low,
            row.kl_high,
            row.n_prompts,
            row.kl_bound,
        )
    return table


def summarize_kl(
    table: pd.DataFrame, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean per-prompt KL per method and condition, with a percentile bootstrap interval over
    prompts (`rewardcond.evaluation.bootstrap_ci`), in nats per sequence.

    Returns columns method, target_name, target_reward, estimator, kl, kl_low, kl_high,
    kl_bound, n_prompts, n_unsupported. A condition with an infinite per-prompt KL (a sample sft
    cannot emit) has kl = inf and no interval (NaN), rather than one that leaves it out.
    """
    from rewardcond.evaluation import bootstrap_ci

    rows = []
    for (method, name), group in table.groupby(["method", "target_name"], sort=False):
        values = group["kl"].to_numpy(dtype=np.float64)
        if np.isfinite(values).all():
            mean = float(values.mean())
            low, high = bootstrap_ci(values, n_resamples=n_resamples, level=level, seed=seed)
        else:
            mean, low, high = math.inf, math.nan, math.nan
        rows.append(
            {
                "method": method,
                "target_name": name,
                "target_reward": float(group["target_reward"].iloc[0]),
                "estimator": group["estimator"].iloc[0],
                "kl": mean,
                "kl_low": low,
                "kl_high": high,
                "kl_bound": float(group["kl_bound"].iloc[0]),
                "n_prompts": len(group),
                "n_unsupported": int(group["n_unsupported"].sum()),
            }
        )
    return pd.DataFrame(rows)

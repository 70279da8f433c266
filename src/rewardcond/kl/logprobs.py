"""Log-probabilities of completions under a policy, in nats per sequence (see `rewardcond.kl`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rewardcond.batching import (
    IGNORE_INDEX,
    RewardConditionedCollator,
    max_text_length,
    prompt_token_ids,
    require_pad_token,
)
from rewardcond.modeling import RewardConditionedLM

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

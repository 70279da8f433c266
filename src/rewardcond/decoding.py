"""Batched completion of prompts, for reward-conditioned and plain causal LMs alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import set_seed

from rewardcond.batching import prompt_token_ids, require_eos_token, require_pad_token
from rewardcond.modeling import RewardConditionedLM


@dataclass(frozen=True)
class Completion:
    """One generated completion: its text, its token ids (EOS excluded), and whether it ended
    with EOS (`finished`) rather than by running out of `max_new_tokens`."""

    text: str
    token_ids: list[int]
    finished: bool


def complete(
    model,
    tokenizer,
    prompts: Sequence[str],
    target_rewards: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    *,
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    seed: int | None = None,
) -> list[Completion]:
    """Complete each prompt, in batches of similar length, left-padded, stopping at EOS.

    Args:
        model: a `RewardConditionedLM` (then `target_rewards` is required, one per prompt, in
            raw reward-model units) or a plain causal LM (then `target_rewards` must be None).
        prompts: prompt texts, tokenized as in training (`encode_example`).
        do_sample, temperature, top_p: greedy by default; sampling settings otherwise.
        seed: seeds sampling (set once before the first batch).

    Returns:
        One `Completion` per prompt, in the order of `prompts`.
    """
    conditioned = isinstance(model, RewardConditionedLM)
    if conditioned and target_rewards is None:
        raise ValueError("target_rewards is required for a RewardConditionedLM (one per prompt)")
    if not conditioned and target_rewards is not None:
        raise ValueError(
            f"target_rewards must be None for a plain causal LM ({type(model).__name__})"
        )
    if conditioned:
        target_rewards = model.check_target_rewards(target_rewards, len(prompts))
    pad_id, eos_id = require_pad_token(tokenizer), require_eos_token(tokenizer)
    if seed is not None:
        set_seed(seed)
    # top_k=0: only temperature and top_p shape sampling, whatever the model's generation config.
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}

    encoded = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    results: list[Completion | None] = [None] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch"):
            rows = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad_id)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for row, i in enumerate(rows):
                input_ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                attention_mask[row, width - len(encoded[i]) :] = 1
            extra = {"target_rewards": target_rewards[rows]} if conditioned else {}
            with torch.no_grad():
                output = model.generate(
                    input_ids=input_ids.to(model.device),
                    attention_mask=attention_mask.to(model.device),
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    eos_token_id=eos_id,
                    pad_token_id=pad_id,
                    **sampling,
                    **extra,
                )
            for row, new_tokens in zip(rows, output[:, width:].tolist(), strict=True):
                finished = eos_id in new_tokens
                token_ids = new_tokens[: new_tokens.index(eos_id)] if finished else new_tokens
                text = tokenizer.decode(token_ids, skip_special_tokens=True)
                results[row] = Completion(text=text, token_ids=token_ids, finished=finished)
    finally:
        model.train(was_training)
    return results

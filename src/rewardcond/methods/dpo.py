"""`dpo`: Direct Preference Optimization (Rafailov et al. 2023), the offline RLHF baseline.

It starts from the `sft` model and learns from the train-split human comparisons with TRL's
`DPOTrainer`; the frozen reference policy is a second copy of the same `sft` weights.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def preference_pairs(comparisons: pd.DataFrame, prompts: pd.Series) -> pd.DataFrame:
    """(post_id, prompt, chosen, rejected) rows from comparisons (`choice` = index of the winner).

    `prompts` maps post_id to the rendered prompt; a comparison whose post has no prompt is an
    error, not a silent drop.
    """
    missing = sorted(set(comparisons["post_id"]) - set(prompts.index))
    if missing:
        raise KeyError(f"{len(missing)} compared posts have no prompt, e.g. {missing[:3]}")
    bad = ~comparisons["choice"].isin([0, 1])
    if bad.any():
        raise ValueError(
            f"comparisons column 'choice' must be 0 or 1; row {int(bad.idxmax())} has "
            f"{comparisons['choice'][bad].iloc[0].item()!r}"
        )
    first_wins = comparisons["choice"].to_numpy() == 0
    return pd.DataFrame(
        {
            "post_id": comparisons["post_id"].to_numpy(),
            "prompt": comparisons["post_id"].map(prompts).to_numpy(),
            "chosen": comparisons["summary_0"].where(first_wins, comparisons["summary_1"]),
            "rejected": comparisons["summary_1"].where(first_wins, comparisons["summary_0"]),
        }
    ).reset_index(drop=True)


def train_dpo(
    model,
    ref_model,
    tokenizer,
    pairs: pd.DataFrame,
    *,
    checkpoint_dir: str | os.PathLike,
    beta: float,
    learning_rate: float,
    epochs: float,
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    max_length: int,
    loss_type: str = "sigmoid",
    warmup_steps: float = 0.0,
    save_steps: int = 500,
    seed: int,
    device: str = "cpu",
):
    """Fine-tune `model` on (prompt, chosen, rejected) pairs with DPO; return TRL's trainer.

    TRL appends EOS to `chosen`/`rejected` itself, and silently drops pairs whose prompt alone
    reaches `max_length`: such pairs are refused here instead. Checkpoints go to
    `checkpoint_dir`, and a rerun resumes from the last one there.
    """
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint
    from trl import DPOConfig, DPOTrainer

    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise KeyError(f"preference pairs need columns {list(PAIR_COLUMNS)}; missing {missing}")
    if len(pairs) == 0:
        raise ValueError("no preference pairs to train on")
    prompt_lengths = [len(tokenizer(p)["input_ids"]) for p in pairs["prompt"]]
    too_long = [i for i, n in enumerate(prompt_lengths) if n >= max_length]
    if too_long:
        raise ValueError(
            f"{len(too_long)} prompts fill max_length={max_length} tokens (e.g. pair "
            f"{too_long[0]}: {prompt_lengths[too_long[0]]} tokens); DPOTrainer would drop them: "
            "shorten the prompts or raise max_length"
        )
    args = DPOConfig(
        output_dir=str(checkpoint_dir),
        beta=beta,
        loss_type=[loss_type],
        learning_rate=learning_rate,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        warmup_steps=warmup_steps,
        max_length=max_length,
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        bf16=_bf16_supported(device),
        # TRL turns activation checkpointing on by default: a waste at these sizes.
        activation_checkpointing=False,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        logging_steps=1,
        report_to=[],
        disable_tqdm=False,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_pandas(pairs[list(PAIR_COLUMNS)], preserve_index=False),
        processing_class=tokenizer,
    )
    last = get_last_checkpoint(str(checkpoint_dir)) if os.path.isdir(checkpoint_dir) else None
    trainer.train(resume_from_checkpoint=last)
    return trainer


def _bf16_supported(device: str) -> bool:
    import torch

    return device.startswith("cuda") and torch.cuda.is_bf16_supported()


def dpo_log(trainer) -> list[dict[str, Any]]:
    """Per-step training records (step, loss, rewards/margins, ...) from a finished trainer."""
    return [record for record in trainer.state.log_history if "loss" in record]

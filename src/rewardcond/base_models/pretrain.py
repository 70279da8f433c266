"""A short causal-LM pretraining of a tiny base on the corpus, so it can read and copy.

A tiny model trained from scratch only on reward-conditioned summaries learns how much to write,
not to copy the post's own facts; a few minutes of plain language modelling on prompt + reference
documents first gives the later stages a base that already continues `TL;DR:` from the post.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_scheduler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainingConfig:
    """The budget of one pretraining run.

    steps: optimizer steps (0 skips pretraining); repeated_posts: also train on each train post
    written twice (see `tiny.pretraining_documents`); batch_size: documents per step;
    learning_rate: peak AdamW learning rate, reached linearly over `warmup_steps` and decayed by
    a cosine to a tenth of it by the last step (transformers' `cosine_with_min_lr` schedule,
    `min_lr_rate` 0.1); seq_length: tokens per document (longer ones keep their last
    `seq_length` tokens, where the summary and the end of the post it copies from are);
    weight_decay and grad_clip as in AdamW training of GPT-2.
    """

    steps: int = 0
    repeated_posts: bool = False
    batch_size: int = 16
    learning_rate: float = 3e-3
    seq_length: int = 256
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0


def encode_documents(
    tokenizer: PreTrainedTokenizerBase, documents: list[str], seq_length: int
) -> tuple[list[torch.Tensor], int]:
    """Ids of each document + EOS, cut to its last `seq_length` tokens; and how many were cut."""
    if not documents:
        raise ValueError("no documents to pretrain on (is the train split empty?)")
    encoded, truncated = [], 0
    for ids in tokenizer(documents, add_special_tokens=False)["input_ids"]:
        ids = [*ids, tokenizer.eos_token_id]
        truncated += len(ids) > seq_length
        encoded.append(torch.tensor(ids[-seq_length:], dtype=torch.long))
    return encoded, truncated


def pretrain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: list[str],
    config: PretrainingConfig,
    *,
    seed: int,
    device: str = "cpu",
) -> pd.DataFrame:
    """Train `model` in place as a causal LM on `documents`; return the loss curve.

    Batches are drawn from seeded shuffles of the documents (one epoch after another) and padded
    to their longest member; padding is masked from attention and loss, the final EOS is
    trained. The same seed, data and device give identical weights.
    """
    encoded, truncated = encode_documents(tokenizer, documents, config.seq_length)
    if truncated:
        logger.info(
            "%d of %d documents cut to their last %d tokens",
            truncated,
            len(encoded),
            config.seq_length,
        )
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=(0.9, 0.95),
        weight_decay=config.weight_decay,
    )
    schedule = get_scheduler(
        "cosine_with_min_lr",
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.steps,
        scheduler_specific_kwargs={"min_lr_rate": 0.1},
    )
    order: list[int] = []
    rows, tokens_seen, start = [], 0, time.perf_counter()
    progress = tqdm(range(config.steps), desc="pretraining", unit="step", mininterval=2.0)
    for step in progress:
        while len(order) < config.batch_size:
            order += torch.randperm(len(encoded), generator=generator).tolist()
        batch, order = [encoded[i] for i in order[: config.batch_size]], order[config.batch_size :]
        input_ids, attention_mask, labels = _pad(batch, tokenizer.pad_token_id)
        learning_rate = schedule.get_last_lr()[0]
        loss = model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            labels=labels.to(device),
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_seen += int(attention_mask.sum())
        rows.append(
            {
                "step": step + 1,
                "loss": loss.item(),
                "learning_rate": learning_rate,
                "tokens": tokens_seen,
                "seconds": time.perf_counter() - start,
            }
        )
        progress.set_postfix(loss=f"{rows[-1]['loss']:.3f}", refresh=False)
    model.eval()
    return pd.DataFrame(rows, columns=["step", "loss", "learning_rate", "tokens", "seconds"])


def _pad(batch: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, ...]:
    length = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return input_ids, attention_mask, labels


def plot_loss_curve(curve: pd.DataFrame, path: str | Path, title: str) -> None:
    """Per-step loss and its 50-step moving average against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["step"], curve["loss"], alpha=0.3, label="per step")
    ax.plot(curve["step"], curve["loss"].rolling(50, min_periods=1).mean(), label="50-step mean")
    ax.set(xlabel="step", ylabel="causal LM loss (nats/token)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

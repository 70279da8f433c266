"""The `train_reward_model` stage: a `RewardModel` trained on the train comparisons as in
Stiennon et al. (2020), its bias then shifted so that the reference summaries of the train posts
score 0 on average (the pairwise loss cannot see a constant)."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, get_scheduler

from rewardcond.artifacts import atomic_path, build_manifest, resolve_device, set_seed, write_json
from rewardcond.reward_models.inputs import InputBuilder, post_fields
from rewardcond.reward_models.model import RewardModel, pairwise_loss
from rewardcond.reward_models.scoring import DTYPES, RewardModelScorer, pad_encodings
from rewardcond.tables import comparison_pairs

logger = logging.getLogger(__name__)


def load_base(path: str | os.PathLike) -> tuple[PreTrainedModel, Any]:
    """A causal LM and its tokenizer from a materialised `data/models/<name>/` folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} holds no base model (config.json missing); build it with the base_model rule"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        raise ValueError(f"the tokenizer in {path} has no pad token; the base-model stage sets one")
    if tokenizer.eos_token is None:
        raise ValueError(f"the tokenizer in {path} has no EOS token; a summary must end with one")
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tokenizer


def train_reward_model(
    model: RewardModel,
    tokenizer,
    posts: Sequence[dict],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    template: str,
    max_length: int | None = None,
    epochs: float = 1.0,
    batch_size: int = 64,
    lr: float = 1.5e-5,
    weight_decay: float = 0.0,
    warmup_ratio: float = 0.05,
    seed: int = 0,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    log_every: int = 10,
) -> pd.DataFrame:
    """Train `model` in place on (chosen, rejected) pairs; return the loss curve.

    Each example is `prompt + summary + EOS` with the post truncated to fit `max_length`. Pairs are
    shuffled (seeded) and both members of a pair go through one forward pass. The learning rate
    warms up linearly, then decays with a cosine to 0 (transformers' `cosine` schedule). Returns
    one row per logged step:
    `step, epoch, loss, accuracy, lr` (means over the steps since the last row).
    """
    if not len(posts) == len(chosen) == len(rejected):
        raise ValueError("posts, chosen and rejected must have the same length")
    if not len(posts):
        raise ValueError("no training pairs: the comparisons have no 'train' rows")
    set_seed(seed)
    builder = InputBuilder(tokenizer, template, max_length=max_length or model.max_length)
    encoded = list(
        zip(builder.encode(posts, chosen)[0], builder.encode(posts, rejected)[0], strict=True)
    )
    generator = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    total_steps = max(1, round(steps_per_epoch * epochs))
    warmup = round(total_steps * warmup_ratio)

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = get_scheduler(
        "cosine", optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )
    history, window = [], []
    order = np.array([], dtype=int)
    started = time.perf_counter()
    for step in tqdm(range(total_steps), desc="reward model", unit="step"):
        if len(order) < batch_size:
            order = np.concatenate([order, generator.permutation(len(encoded))])
        batch, order = order[:batch_size], order[batch_size:]
        inputs = pad_encodings(
            [e for i in batch for e in encoded[i]], tokenizer.pad_token_id, device
        )
        with torch.autocast(
            device.split(":")[0], autocast_dtype, enabled=autocast_dtype is not None
        ):
            rewards = model(**inputs).logits[:, 0].float()
        loss = pairwise_loss(rewards[0::2], rewards[1::2])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append((loss.item(), (rewards[0::2] > rewards[1::2]).float().mean().item()))
        if (step + 1) % log_every == 0 or step + 1 == total_steps:
            losses, accuracies = zip(*window, strict=True)
            history.append(
                {
                    "step": step + 1,
                    "epoch": (step + 1) / steps_per_epoch,
                    "loss": float(np.mean(losses)),
                    "accuracy": float(np.mean(accuracies)),
                    "lr": schedule.get_last_lr()[0],
                    "seconds": time.perf_counter() - started,
                }
            )
            window = []
    model.eval()
    return pd.DataFrame(history)


def normalize_to_references(
    model: RewardModel, reference_rewards: np.ndarray
) -> dict[str, float | int]:
    """Shift the head's bias so that rewards of the given references average 0; return the shift."""
    reference_rewards = np.asarray(reference_rewards, dtype=np.float64)
    if not len(reference_rewards) or not np.isfinite(reference_rewards).all():
        raise ValueError("normalisation needs at least one finite reference reward")
    mean = float(reference_rewards.mean())
    with torch.no_grad():
        model.score.bias -= mean
    return {"reference_mean_before": mean, "n_references": len(reference_rewards)}


@dataclass(frozen=True)
class RewardModelTrainSettings:
    """Settings of the trained reward model (config section `reward_model.train`, without `base`,
    the folder it starts from); the defaults are the schema's, from Stiennon et al. (2020).

    epochs: passes over the train comparisons (fractions allowed); batch_size: comparisons per
    optimizer step; lr: peak AdamW learning rate (linear warmup over `warmup_ratio` of the
    steps, cosine decay to 0); max_length: tokens per input (prompt + summary + EOS; None: the
    base's context); max_pairs: a seeded subset of this many train comparisons (None: all);
    gpu_dtype: autocast dtype on CUDA (CPU always runs float32); batch_tokens: token budget of a
    scoring batch when normalising on the reference summaries.
    """

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 1.5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_length: int | None = None
    max_pairs: int | None = None
    gpu_dtype: str = "bfloat16"
    batch_tokens: int = 16384


def build_trained_reward_model(
    *,
    comparisons_path: str | os.PathLike,
    posts_path: str | os.PathLike,
    base_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    template: str,
    params: dict,
    seed: int,
    device: str = "auto",
) -> dict:
    """The `train_reward_model` stage: train on the 'train' comparisons of TL;DR posts (`domain`
    tldr; CNN/DM ones are left out and counted in the manifest), normalise, save.

    `params` is the `reward_model.train` config section: `RewardModelTrainSettings` keyword
    arguments (missing ones take its defaults; a `base` key is ignored, the base comes from
    `base_path`). Writes `output_dir` atomically: safetensors weights, config, tokenizer,
    `loss.csv` and `manifest.json`. Returns the manifest.
    """
    settings = RewardModelTrainSettings(**{k: v for k, v in params.items() if k != "base"})
    device = resolve_device(device)
    set_seed(seed)
    comparisons = pd.read_parquet(comparisons_path)
    posts = pd.read_parquet(posts_path).set_index("post_id", drop=False)
    train = comparisons[comparisons["split"] == "train"]
    n_other_domains = 0
    if "domain" in train.columns:  # TL;DR only, as the paper's reward model
        n_other_domains = int((train["domain"] != "tldr").sum())
        train = train[train["domain"] == "tldr"]
        logger.info("left out %d train comparisons of other domains (CNN/DM)", n_other_domains)
    if settings.max_pairs is not None and len(train) > settings.max_pairs:
        train = train.sample(n=settings.max_pairs, random_state=seed)
    pairs = comparison_pairs(train)
    missing = sorted(set(pairs["post_id"]) - set(posts.index))
    if missing:
        raise ValueError(
            f"{comparisons_path}: {len(missing)} post_id(s) are not in {posts_path}, "
            f"e.g. {missing[0]!r}"
        )
    base, tokenizer = load_base(base_path)
    model = RewardModel.from_base(base)
    del base
    model.config.context_length = max_length = settings.max_length or model.max_length
    autocast = DTYPES[settings.gpu_dtype] if device.startswith("cuda") else None
    history = train_reward_model(
        model,
        tokenizer,
        post_fields(posts.loc[pairs["post_id"]]),
        pairs["chosen"].tolist(),
        pairs["rejected"].tolist(),
        template=template,
        max_length=max_length,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_ratio=settings.warmup_ratio,
        seed=seed,
        device=device,
        autocast_dtype=autocast if autocast != torch.float32 else None,
    )
    references = posts[(posts["split"] == "train") & posts["reference"].notna()]
    scorer = RewardModelScorer(
        model,
        tokenizer,
        template=template,
        max_length=max_length,
        device=device,
        batch_tokens=settings.batch_tokens,
        identity="trained:unsaved",
    )
    normalization = normalize_to_references(
        model, scorer.score(post_fields(references), references["reference"].tolist())
    )
    logger.info(
        "reward normalised: reference mean %.4f moved to 0", normalization["reference_mean_before"]
    )
    model.to("cpu", dtype=torch.float32)
    with atomic_path(output_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        history.to_csv(tmp / "loss.csv", index=False)
        manifest = build_manifest(
            params={**params, **asdict(settings), "template": template, "max_length": max_length},
            seed=seed,
            inputs=[comparisons_path, posts_path, base_path],
            n_train_pairs=len(pairs),
            n_train_other_domains=n_other_domains,
            normalization=normalization,
            final_train_loss=float(history["loss"].iloc[-1]),
            device=device,
        )
        write_json(tmp / "manifest.json", manifest)
    return manifest

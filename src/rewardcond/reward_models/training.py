"""The `train_reward_model` stage: a `RewardModel` trained on the train comparisons as in
Stiennon et al. (2020), its bias then shifted so that the reference summaries of the train posts
score 0 on average (the pairwise loss cannot see a constant).

Training runs on the HF `Trainer` (`PairwiseRewardTrainer`), as the policies do
(`rewardcond.train`): `accelerate launch` over several GPUs, `global_batch_size` pairs per step
whatever the number of processes, checkpoints outside the declared output so that a killed job
resumes from the last complete one (discarded when settings or inputs change). Not TRL's
`RewardTrainer`: it tokenizes and truncates texts itself (from the end: the summary), while the
inputs must be the ones scoring reads (`InputBuilder` shortens the post, never the summary).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)

from rewardcond.artifacts import (
    atomic_path,
    build_manifest,
    config_hash,
    resolve_device,
    set_seed,
    write_json,
)
from rewardcond.curves import loss_curve, plot_loss
from rewardcond.distributed import (
    checkpointed_arguments,
    launched_processes,
    plan_batches,
    resume_point,
)
from rewardcond.reward_models.inputs import InputBuilder, post_fields
from rewardcond.reward_models.model import RewardModel, pairwise_loss
from rewardcond.reward_models.scoring import RewardModelScorer, pad_encodings
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


@dataclass(frozen=True)
class RewardModelTrainSettings:
    """Settings of the trained reward model (config section `reward_model.train`, without `base`,
    the folder it starts from); the defaults are the schema's, from Stiennon et al. (2020).

    epochs: passes over the train comparisons (fractions allowed); global_batch_size:
    comparisons per optimizer step over all processes, made of per-device batches of at most
    `per_device_batch_size` comparisons x `gradient_accumulation_steps` (None: derived) x
    processes (`rewardcond.distributed.plan_batches`); lr: peak AdamW learning rate (linear
    warmup over `warmup_ratio` of the steps, cosine decay to 0); max_length: tokens per input
    (prompt + summary + EOS; None: the base's context); max_pairs: a seeded subset of this many
    train comparisons (None: all); gpu_dtype: mixed precision on CUDA (CPU always runs float32);
    batch_tokens: token budget of a scoring batch when normalising on the reference summaries;
    save_steps: a checkpoint every this many steps (resumed after a kill); logging_steps: a row
    of `loss.csv` every this many steps.
    """

    epochs: float = 1.0
    global_batch_size: int = 64
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int | None = None
    lr: float = 1.5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_length: int | None = None
    max_pairs: int | None = None
    gpu_dtype: str = "bfloat16"
    batch_tokens: int = 16384
    save_steps: int = 200
    logging_steps: int = 10


class PairCollator:
    """Pads pairs (`{"chosen": encoding, "rejected": encoding}`) into one batch of rows
    `chosen_0, rejected_0, chosen_1, ...`: right-padded `input_ids` and `attention_mask` of shape
    (2 x pairs, longest)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        rows = [encoding for pair in features for encoding in (pair["chosen"], pair["rejected"])]
        return pad_encodings(rows, self.pad_token_id, "cpu")


class PairwiseRewardTrainer(Trainer):
    """HF `Trainer` with the paper's pairwise loss, -log sigmoid(r_chosen - r_rejected) averaged
    over the pairs of a batch (`pairwise_loss`), both members in one forward pass. Logs `accuracy`
    (share of pairs ranked right, this process's batches since the last log) beside the loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ranked_right: list[float] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        rewards = model(**inputs).logits[:, 0].float()
        chosen, rejected = rewards[0::2], rewards[1::2]
        loss = pairwise_loss(chosen, rejected)
        if model.training:
            self._ranked_right.append((chosen > rejected).float().mean().item())
        return (loss, {"rewards": rewards}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._ranked_right:
            logs["accuracy"] = float(np.mean(self._ranked_right))
            self._ranked_right = []
        super().log(logs, start_time)


def train_reward_model(
    model: RewardModel,
    tokenizer,
    posts: Sequence[dict],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    template: str,
    settings: RewardModelTrainSettings,
    checkpoint_dir: str | os.PathLike,
    seed: int = 0,
    device: str = "cpu",
    fingerprint: dict | None = None,
    callbacks=(),
) -> PairwiseRewardTrainer:
    """Train `model` in place on (chosen, rejected) pairs with `PairwiseRewardTrainer`; return it
    (`state.log_history` holds the loss curve, `resumed_from` the checkpoint it resumed from).

    Each example is `prompt + summary + EOS` with the post truncated to fit `settings.max_length`
    (or the model's context), as scoring reads it. The Trainer shuffles the pairs (seeded), runs
    `settings.epochs` passes in optimizer steps of `settings.global_batch_size` pairs over all
    processes (`rewardcond.distributed.plan_batches`), and schedules the learning rate with
    transformers' `cosine` schedule (linear warm-up over `warmup_ratio` of the steps, then
    cosine decay to 0); no gradient clipping, as in the paper. Checkpoints go to
    `checkpoint_dir` every `save_steps` steps; a rerun resumes from the last complete one, unless
    `fingerprint` (settings and inputs, see `discard_stale_checkpoints`) differs from the one
    recorded there, which discards them.

    Raises:
        ValueError: inputs of other lengths or none; a batch plan that does not divide.
    """
    if not len(posts) == len(chosen) == len(rejected):
        raise ValueError("posts, chosen and rejected must have the same length")
    if not len(posts):
        raise ValueError("no training pairs: the comparisons have no 'train' rows")
    plan = plan_batches(
        settings.global_batch_size,
        num_processes=launched_processes(),
        max_per_device_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        section="reward_model.train",
    )
    logger.info("reward model: %s", plan)
    builder = InputBuilder(tokenizer, template, max_length=settings.max_length or model.max_length)
    pairs = zip(builder.encode(posts, chosen)[0], builder.encode(posts, rejected)[0], strict=True)
    dataset = [{"chosen": c, "rejected": r} for c, r in pairs]  # a list is a map-style dataset
    cuda = device.startswith("cuda")
    args = TrainingArguments(
        **checkpointed_arguments(
            checkpoint_dir,
            plan,
            seed=seed,
            learning_rate=settings.lr,
            num_train_epochs=settings.epochs,
            lr_scheduler_type="cosine",
            warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a share of the steps
            weight_decay=settings.weight_decay,
            max_grad_norm=0.0,
            logging_steps=settings.logging_steps,
            save_steps=settings.save_steps,
            save_total_limit=2,
            bf16=cuda and settings.gpu_dtype == "bfloat16",
            fp16=cuda and settings.gpu_dtype == "float16",
            use_cpu=not cuda,
            disable_tqdm=True,
        )
    )
    last = resume_point(args, checkpoint_dir, fingerprint, name="the reward model")
    set_seed(seed)
    trainer = PairwiseRewardTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=PairCollator(tokenizer.pad_token_id),
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    trainer.resumed_from = str(last) if last else None
    model.eval()
    return trainer


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


def build_trained_reward_model(
    *,
    comparisons_path: str | os.PathLike,
    posts_path: str | os.PathLike,
    base_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    template: str,
    params: dict,
    seed: int,
    device: str = "auto",
    callbacks=(),
) -> dict | None:
    """The `train_reward_model` stage: train on the 'train' comparisons of TL;DR posts (`domain`
    tldr; CNN/DM ones are left out and counted in the manifest), normalise, save.

    `params` is the `reward_model.train` config section: `RewardModelTrainSettings` keyword
    arguments (missing ones take its defaults; a `base` key is ignored, the base comes from
    `base_path`). Checkpoints go to `checkpoint_dir` (see `train_reward_model`). The main process
    writes `output_dir` atomically: safetensors weights, config, tokenizer, `loss.csv`,
    `loss.png` and `manifest.json`, and returns the manifest (other processes return None).
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
    run_params = {
        **asdict(settings),
        "template": template,
        "max_length": max_length,
        "world_size": launched_processes(),
        "device": device,
    }
    inputs = [comparisons_path, posts_path, base_path]
    manifest = build_manifest(params=run_params, seed=seed, inputs=inputs)
    fingerprint = {
        "params": run_params,
        "seed": seed,
        "inputs": manifest["inputs"],
        "hash": config_hash({"p": run_params, "s": seed, "i": manifest["inputs"]}),
    }
    trainer = train_reward_model(
        model,
        tokenizer,
        post_fields(posts.loc[pairs["post_id"]]),
        pairs["chosen"].tolist(),
        pairs["rejected"].tolist(),
        template=template,
        settings=RewardModelTrainSettings(**{**asdict(settings), "max_length": max_length}),
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        device=device,
        fingerprint=fingerprint,
        callbacks=callbacks,
    )
    if not trainer.is_world_process_zero():
        trainer.accelerator.wait_for_everyone()
        return None
    model = trainer.accelerator.unwrap_model(trainer.model)
    curve = loss_curve(trainer.state.log_history, ("accuracy",))
    references = posts[(posts["split"] == "train") & posts["reference"].notna()]
    scorer = RewardModelScorer(
        model,
        tokenizer,
        template=template,
        max_length=max_length,
        device=str(trainer.args.device),
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
        curve.to_csv(tmp / "loss.csv", index=False)
        plot_loss(curve, tmp / "loss.png", title="reward model: training loss",
                  ylabel="pairwise loss (nats/pair)")  # fmt: skip
        manifest.update(
            params={**params, **manifest["params"]},
            n_train_pairs=len(pairs),
            n_train_other_domains=n_other_domains,
            normalization=normalization,
            resumed_from=trainer.resumed_from,
            global_step=trainer.state.global_step,
            final_train_loss=float(curve["loss"].iloc[-1]) if len(curve) else None,
        )
        write_json(tmp / "manifest.json", manifest)
    trainer.accelerator.wait_for_everyone()
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Command line of the `train_reward_model` rule, run once per process by `accelerate
    launch --module rewardcond.reward_models.training` (dicts as JSON), as `rewardcond.train`."""
    parser = argparse.ArgumentParser(
        prog="python -m rewardcond.reward_models.training", description=__doc__
    )
    parser.add_argument("--comparisons", required=True, help="comparisons Parquet file")
    parser.add_argument("--posts", required=True, help="posts Parquet file")
    parser.add_argument("--base", required=True, help="base model folder")
    parser.add_argument("--output", required=True, help="reward model folder")
    parser.add_argument("--checkpoints", required=True, help="checkpoint folder (resumed)")
    parser.add_argument("--template", type=json.loads, required=True, help="JSON string")
    parser.add_argument("--params", type=json.loads, required=True, help="reward_model.train")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the whole job")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{os.environ.get('RANK', '0')} %(levelname)s %(name)s: %(message)s",
    )
    if args.threads:
        torch.set_num_threads(max(1, args.threads // launched_processes()))
    build_trained_reward_model(
        comparisons_path=args.comparisons,
        posts_path=args.posts,
        base_path=args.base,
        output_dir=args.output,
        checkpoint_dir=args.checkpoints,
        template=args.template,
        params=args.params,
        seed=args.seed,
        device=args.device,
    )


if __name__ == "__main__":
    main()

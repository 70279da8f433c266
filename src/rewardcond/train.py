"""Fine-tune one method's model on its training set with the Hugging Face Trainer.

Checkpoints go to a folder that is not a workflow output, so a job killed mid-way resumes from
its last checkpoint on the next run (checkpoints written under other settings or inputs are
discarded first). The final model, its tokenizer, a manifest and the loss curve (CSV + PNG) are
written by the main process only, into a folder that appears complete or not at all. Trainer
handles DDP under `accelerate launch`; the global batch size is a setting, and the per-device
batch times gradient accumulation times processes is derived from it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from rewardcond.artifacts import (
    atomic_path,
    build_manifest,
    config_hash,
    resolve_device,
    set_seed,
    write_json,
)
from rewardcond.batching import RewardConditionedCollator, encode_example, max_text_length
from rewardcond.methods import Method

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (config section `train`, after the method's overrides).

    batch_size: global batch (examples per optimizer step, over all processes).
    per_device_batch_size: examples per forward pass on one device; gradient accumulation makes
        up the rest, so results do not depend on how many processes ran them.
    epochs: passes over the training set; max_steps > 0 overrides it.
    save_steps: a checkpoint every this many optimizer steps (to resume after a crash).
    loss_on: `completion` (the prompt is context only) or `all`.
    """

    learning_rate: float = 5e-5
    batch_size: int = 64
    per_device_batch_size: int = 16
    epochs: float = 1.0
    max_steps: int = -1
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    save_steps: int = 500
    save_total_limit: int = 2
    logging_steps: int = 10
    loss_on: str = "completion"
    gradient_checkpointing: bool = False

    def gradient_accumulation_steps(self, world_size: int) -> int:
        """Accumulation steps that make `batch_size` from `per_device_batch_size` x processes."""
        per_step = self.per_device_batch_size * world_size
        if self.batch_size % per_step:
            raise ValueError(
                f"train.batch_size = {self.batch_size} is not a multiple of"
                f" train.per_device_batch_size x processes = {self.per_device_batch_size} x"
                f" {world_size}"
            )
        return self.batch_size // per_step


class ExampleDataset(Dataset):
    """Encoded examples of a training set (a list of dicts the collator pads)."""

    def __init__(self, method: Method, trainset: pd.DataFrame, tokenizer, max_length: int, loss_on):
        self.features = []
        for row in trainset.itertuples(index=False):
            example = method.example(row)
            feature = encode_example(
                tokenizer,
                example.prompt,
                example.completion,
                max_length=max_length,
                loss_on=loss_on,
            )
            if example.target_reward is not None:
                feature["target_reward"] = example.target_reward
            self.features.append(feature)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]


def train_method(
    method: Method,
    *,
    trainset_path: str,
    base_path: str,
    output_dir: str,
    checkpoint_dir: str,
    settings: TrainSettings,
    seed: int,
    device: str = "auto",
    callbacks=(),
) -> Trainer:
    """Train `method` on `trainset_path` from the base folder; save the model to `output_dir`.

    Resumes from the last checkpoint in `checkpoint_dir` when one was written with the same
    settings and inputs. Returns the Trainer (its `state.log_history` holds the loss curve).
    """
    device = resolve_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = settings.gradient_accumulation_steps(world_size)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    trainset = pd.read_parquet(trainset_path)
    if trainset.empty:
        raise ValueError(f"{trainset_path} has no rows to train on")
    params = {
        "method": method.name,
        "method_options": method.options(),
        "train": asdict(settings),
        "world_size": world_size,
        "gradient_accumulation_steps": accumulation,
        "device": device,
        "bf16": bf16,
        "rows": len(trainset),
    }
    manifest = build_manifest(params=params, seed=seed, inputs=[trainset_path, base_path])

    arguments = dict(
        output_dir=checkpoint_dir,
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a share of the steps
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        activation_checkpointing=settings.gradient_checkpointing,
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=seed,
        data_seed=seed,
        report_to="none",
        remove_unused_columns=False,
    )
    args = TrainingArguments(**arguments)
    fingerprint = {
        "params": params,
        "seed": seed,
        "inputs": manifest["inputs"],
        "hash": config_hash({"p": params, "s": seed, "i": manifest["inputs"]}),
    }
    if args.should_save:
        _discard_stale_checkpoints(Path(checkpoint_dir), fingerprint)
    args.distributed_state.wait_for_everyone()

    set_seed(seed)
    model, tokenizer = method.build_model(base_path, trainset)
    if method.learns_from_pairs:
        trainer = method.pair_trainer(
            model, tokenizer, trainset, base_path=base_path, args=arguments, callbacks=callbacks
        )
    else:
        dataset = ExampleDataset(
            method, trainset, tokenizer, max_text_length(model), settings.loss_on
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=RewardConditionedCollator(tokenizer),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
    last = get_last_checkpoint(checkpoint_dir) if Path(checkpoint_dir).is_dir() else None
    if last:
        log.info("resuming %s from %s", method.name, last)
    result = trainer.train(resume_from_checkpoint=last)

    state_dict = trainer.accelerator.get_state_dict(trainer.model)  # collective under FSDP
    if trainer.is_world_process_zero():
        curve = loss_curve(trainer.state.log_history)
        manifest.update(
            resumed_from=last,
            global_step=trainer.state.global_step,
            train_runtime_s=result.metrics.get("train_runtime"),
            final_loss=float(curve["loss"].iloc[-1]) if len(curve) else None,
        )
        with atomic_path(output_dir, is_dir=True) as tmp:
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(
                tmp, state_dict=state_dict
            )
            tokenizer.save_pretrained(tmp)
            curve.to_csv(tmp / "loss.csv", index=False)
            plot_loss(curve, tmp / "loss.png", title=f"{method.name}: training loss")
            write_json(tmp / "manifest.json", manifest)
    trainer.accelerator.wait_for_everyone()
    return trainer


def _discard_stale_checkpoints(checkpoint_dir: Path, fingerprint: dict) -> None:
    """Remove checkpoints written under other settings or inputs, then record the current ones."""
    record = checkpoint_dir / FINGERPRINT
    if checkpoint_dir.exists():
        previous = json.loads(record.read_text())["hash"] if record.exists() else None
        if previous != fingerprint["hash"]:
            log.warning(
                "discarding checkpoints in %s: written under other settings", checkpoint_dir
            )
            shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(record, fingerprint)


def loss_curve(log_history: list[dict]) -> pd.DataFrame:
    """The logged training steps of a Trainer's `log_history` (step, epoch, loss, lr, grad norm)."""
    columns = ["step", "epoch", "loss", "learning_rate", "grad_norm"]
    rows = [{c: entry.get(c) for c in columns} for entry in log_history if "loss" in entry]
    return pd.DataFrame(rows, columns=columns)


def plot_loss(curve: pd.DataFrame, path, *, title: str) -> None:
    """Training loss against optimizer step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["step"], curve["loss"], marker="." if len(curve) < 50 else None)
    ax.set(xlabel="optimizer step", ylabel="training loss (nats/token)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

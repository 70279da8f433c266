"""Fine-tune one method's model on its training set with the Hugging Face Trainer.

Checkpoints go to a folder that is not a workflow output, so a job killed mid-way resumes from
its last checkpoint on the next run (checkpoints written under other settings or inputs are
discarded first). The final model, its tokenizer, a manifest and the loss curve (CSV + PNG) are
written by the main process only, into a folder that appears complete or not at all. Trainer
handles DDP under `accelerate launch`; the global batch size is a setting, and the per-device
batch times gradient accumulation times processes is derived from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

from rewardcond.artifacts import (
    atomic_path,
    build_manifest,
    config_hash,
    resolve_device,
    set_seed,
    write_json,
)
from rewardcond.batching import RewardConditionedCollator, encode_example, max_text_length
from rewardcond.curves import loss_curve, plot_loss
from rewardcond.distributed import (
    checkpointed_arguments,
    launched_processes,
    plan_batches,
    resume_point,
)
from rewardcond.methods import Method

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (config section `train`, after the method's overrides).

    global_batch_size: examples per optimizer step, over all processes.
    per_device_batch_size: at most this many examples per forward pass on one device; with
        gradient_accumulation_steps (None: derived) they make up the global batch, so results
        do not depend on how many processes ran them (`rewardcond.distributed.plan_batches`).
    epochs: passes over the training set; max_steps > 0 overrides it.
    save_steps: a checkpoint every this many optimizer steps (to resume after a crash).
    loss_on: `completion` (the prompt is context only) or `all`.
    The defaults are the schema's `train` defaults (Stiennon et al. 2020's SFT learning rate and
    batch of 128); tests/test_config_schema.py keeps the two in step.
    """

    learning_rate: float = 6.35e-5
    global_batch_size: int = 128
    per_device_batch_size: int = 16
    gradient_accumulation_steps: int | None = None
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
    scorer: dict | None = None,
    callbacks=(),
    continue_training: bool = False,
) -> Trainer:
    """Train `method` on `trainset_path` from the base folder; save the model to `output_dir`.

    Resumes from the last checkpoint in `checkpoint_dir` when one was written with the same
    settings and inputs. Returns the Trainer (its `state.log_history` holds the loss curve).
    `scorer` holds `reward_models.scoring.load_scorer` keyword arguments of the reward model that a
    method with `trains_online` (rloo) is trained against; its folder is an input like the others.
    `continue_training`: `base_path` is a model this method saved (an online round's previous
    model, `rewardcond.rounds`), loaded by `method.load_model` with its reward scaler kept, not
    built from a base (which would fit a new scaler).

    Raises:
        ValueError: if a method with `trains_online` gets no `scorer`, or another method gets one.
    """
    if method.trains_online and scorer is None:
        raise ValueError(f"method {method.name!r} trains against the reward model: pass scorer")
    if scorer is not None and not method.trains_online:
        raise ValueError(f"method {method.name!r} trains without a reward model: pass no scorer")
    device = resolve_device(device)
    world_size = launched_processes()
    plan = plan_batches(
        settings.global_batch_size,
        num_processes=world_size,
        max_per_device_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
    )
    log.info("%s", plan)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    trainset = pd.read_parquet(trainset_path)
    if trainset.empty:
        raise ValueError(f"{trainset_path} has no rows to train on")
    params = {
        "method": method.name,
        "method_options": method.options(),
        "train": asdict(settings),
        "world_size": world_size,
        "per_device_train_batch_size": plan.per_device_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "device": device,
        "bf16": bf16,
        "rows": len(trainset),
    }
    if continue_training:
        params["continue_training"] = True
    inputs = [trainset_path, base_path]
    if scorer is not None:
        params["scorer"] = scorer
        inputs.append(scorer["path_or_hub_id"])
    manifest = build_manifest(params=params, seed=seed, inputs=inputs)

    arguments = checkpointed_arguments(
        checkpoint_dir,
        plan,
        seed=seed,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a share of the steps
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        activation_checkpointing=settings.gradient_checkpointing,
        bf16=bf16,
        use_cpu=device == "cpu",
    )
    args = TrainingArguments(**arguments)
    fingerprint = {
        "params": params,
        "seed": seed,
        "inputs": manifest["inputs"],
        "hash": config_hash({"p": params, "s": seed, "i": manifest["inputs"]}),
    }
    last = resume_point(args, checkpoint_dir, fingerprint, name=method.name)

    set_seed(seed)
    if continue_training:
        model, tokenizer = method.load_model(base_path)
    else:
        model, tokenizer = method.build_model(base_path, trainset)
    if method.learns_from_pairs:
        trainer = method.pair_trainer(
            model, tokenizer, trainset, base_path=base_path, args=arguments, callbacks=callbacks
        )
    elif method.trains_online:
        from rewardcond.reward_models.scoring import load_scorer

        trainer = method.online_trainer(
            model,
            tokenizer,
            trainset,
            args=arguments,
            callbacks=callbacks,
            scorer=load_scorer(**scorer, device=str(args.device), progress=False),
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
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)

    state_dict = trainer.accelerator.get_state_dict(trainer.model)  # collective under FSDP
    if trainer.is_world_process_zero():
        curve = loss_curve(trainer.state.log_history, method.logged_metrics)
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


def main(argv: list[str] | None = None) -> None:
    """Command line of the `train` rule, run once per process by `accelerate launch`.

    `accelerate launch --num_processes N --module rewardcond.train --method scalar ...` starts N
    copies; a Snakemake `script:` cannot be launched that way, so the rule passes its params as
    arguments (dicts as JSON) and every copy calls `train_method` with them.
    """
    from rewardcond.methods import get_method

    parser = argparse.ArgumentParser(prog="python -m rewardcond.train", description=__doc__)
    parser.add_argument("--method", required=True, help="registered method name")
    parser.add_argument("--method-options", type=json.loads, default={}, help="JSON object")
    parser.add_argument("--trainset", required=True, help="trainset Parquet file")
    parser.add_argument("--base", required=True, help="base model folder")
    parser.add_argument("--output", required=True, help="final model folder")
    parser.add_argument("--checkpoints", required=True, help="checkpoint folder (resumed)")
    parser.add_argument("--settings", type=json.loads, required=True, help="TrainSettings JSON")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the whole job")
    parser.add_argument(
        "--scorer", type=json.loads, default=None, help="load_scorer JSON (rloo's reward model)"
    )
    parser.add_argument(
        "--continue-training",
        action="store_true",
        help="--base is a model of this method (an online round's previous one): continue it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{os.environ.get('RANK', '0')} %(levelname)s %(name)s: %(message)s",
    )
    if args.threads:
        torch.set_num_threads(max(1, args.threads // launched_processes()))
    train_method(
        get_method(args.method, args.method_options),
        trainset_path=args.trainset,
        base_path=args.base,
        output_dir=args.output,
        checkpoint_dir=args.checkpoints,
        settings=TrainSettings(**args.settings),
        seed=args.seed,
        device=args.device,
        scorer=args.scorer,
        continue_training=args.continue_training,
    )


if __name__ == "__main__":
    main()

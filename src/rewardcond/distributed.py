"""Scaling out without changing results: one global batch, sharded rows, resumable checkpoints.

Training is launched by `accelerate launch` (one process per GPU, or per CPU slot on gloo for
tests); the optimizer always sees `train.global_batch_size` examples per step, however many
processes share them, because the per-device batch and the gradient accumulation are derived
from it here. Scoring and generation need no communication between workers: Snakemake runs them
as independent shard jobs (`scattergather`, items named `"<i>-of-<n>"`) whose outputs are
concatenated in shard order, which is the single-process output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rewardcond.artifacts import resolve_device, write_json, write_parquet

logger = logging.getLogger(__name__)

GLOBAL_BATCH_KEY = "train.global_batch_size"
ACCUMULATION_KEY = "train.gradient_accumulation_steps"
_SHARD = re.compile(r"(?<![0-9])([0-9]+)-of-([0-9]+)(?![0-9])")
_CHECKPOINT = re.compile(r"^checkpoint-([0-9]+)$")
# Written last by transformers' Trainer when it saves a checkpoint, so its presence marks a
# checkpoint that was saved completely (a job killed mid-save leaves a folder without it).
_CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"
FINGERPRINT = "fingerprint.json"


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's global batch is split: per device x accumulation x processes."""

    global_batch_size: int
    per_device_batch_size: int
    gradient_accumulation_steps: int
    num_processes: int

    def __str__(self) -> str:
        return (
            f"global batch {self.global_batch_size} = {self.per_device_batch_size} per device"
            f" x {self.gradient_accumulation_steps} accumulation x {self.num_processes} processes"
        )


def plan_batches(
    global_batch_size: int,
    *,
    num_processes: int,
    max_per_device_batch_size: int,
    gradient_accumulation_steps: int | None = None,
    section: str = "train",
) -> BatchPlan:
    """Split `global_batch_size` over `num_processes` devices.

    With `gradient_accumulation_steps=None` ("auto") the per-device batch is the largest one
    that fits `max_per_device_batch_size` and divides each process's share, so accumulation is
    as small as memory allows. A fixed accumulation must divide the share and leave a micro-batch
    within the maximum. Raises ValueError naming the config key when the numbers do not divide:
    a silently rounded batch would make results depend on the number of GPUs. `section` is the
    config section the keys are named under (`train`, or `reward_model.train`).
    """
    global_key = GLOBAL_BATCH_KEY.replace("train", section, 1)
    accumulation_key = ACCUMULATION_KEY.replace("train", section, 1)
    for name, value in (
        (global_key, global_batch_size),
        ("number of processes", num_processes),
        (f"{section}.per_device_batch_size", max_per_device_batch_size),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if global_batch_size % num_processes:
        raise ValueError(
            f"{global_key}={global_batch_size} does not divide over {num_processes}"
            f" processes; choose a global batch that is a multiple of the number of GPUs"
        )
    per_process = global_batch_size // num_processes
    if gradient_accumulation_steps is None:
        accumulation = next(
            steps
            for steps in range(1, per_process + 1)
            if per_process % steps == 0 and per_process // steps <= max_per_device_batch_size
        )
    else:
        accumulation = gradient_accumulation_steps
        if accumulation < 1 or per_process % accumulation:
            raise ValueError(
                f"{accumulation_key}={accumulation} does not divide the {per_process} examples"
                f" each of {num_processes} processes gets from {global_key}"
                f"={global_batch_size}"
            )
        if per_process // accumulation > max_per_device_batch_size:
            raise ValueError(
                f"{accumulation_key}={accumulation} leaves {per_process // accumulation} examples"
                f" per device with {num_processes} processes, above"
                f" {section}.per_device_batch_size={max_per_device_batch_size}; raise the"
                f" accumulation or set it to auto"
            )
    return BatchPlan(global_batch_size, per_process // accumulation, accumulation, num_processes)


def launched_processes() -> int:
    """How many processes `accelerate launch` started for this job (1 when run plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def last_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest completely saved `checkpoint-<step>` under `folder`, or None.

    Unlike `transformers.trainer_utils.get_last_checkpoint` it skips a checkpoint whose save was
    interrupted (a killed job), which would otherwise make every resume fail.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if (match := _CHECKPOINT.match(path.name))
        and (path / _CHECKPOINT_COMPLETE_MARKER).is_file()
    ]
    return max(steps)[1] if steps else None


def discard_stale_checkpoints(checkpoint_dir: Path, fingerprint: dict) -> None:
    """Remove `checkpoint_dir` if its checkpoints were written under another `fingerprint`
    (a dict with a `hash` of the settings and inputs), then record the current one there, so
    that a resumed job never continues a run of other settings."""
    record = checkpoint_dir / FINGERPRINT
    if checkpoint_dir.exists():
        previous = json.loads(record.read_text())["hash"] if record.exists() else None
        if previous != fingerprint["hash"]:
            logger.warning(
                "discarding checkpoints in %s: written under other settings", checkpoint_dir
            )
            shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(record, fingerprint)


def checkpointed_arguments(
    checkpoint_dir: str | os.PathLike, plan: BatchPlan, *, seed: int, **arguments
) -> dict:
    """`transformers.TrainingArguments` keywords that every training of the project shares: the
    batch `plan` (per-device batch, accumulation), checkpoints to `checkpoint_dir` by steps, the
    seed for both the model and the data order, no reporting, the examples' columns kept (the
    collators read them); `arguments` adds to or overrides them (learning rate, schedule,
    `save_steps`, ...). A dict, not `TrainingArguments`, because TRL's trainers take their own
    config class built from the same keywords."""
    return {
        "output_dir": str(checkpoint_dir),
        "per_device_train_batch_size": plan.per_device_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "save_strategy": "steps",
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "remove_unused_columns": False,
        **arguments,
    }


def resume_point(
    args, checkpoint_dir: str | os.PathLike, fingerprint: dict | None, *, name: str
) -> Path | None:
    """The checkpoint the training of `name` (logged) resumes from, after the main process
    (`args.should_save` of a `TrainingArguments`) has discarded checkpoints of another
    `fingerprint` (`discard_stale_checkpoints`; None keeps them) and every process has waited for
    it; None means a fresh start."""
    if args.should_save and fingerprint is not None:
        discard_stale_checkpoints(Path(checkpoint_dir), fingerprint)
    args.distributed_state.wait_for_everyone()
    last = last_checkpoint(checkpoint_dir)
    if last:
        logger.info("resuming %s from %s", name, last)
    return last


def parse_shard(item: str) -> tuple[int, int]:
    """`"2-of-4"` (Snakemake's scatter item, 1-based) -> `(1, 4)` (0-based index, count)."""
    match = _SHARD.search(str(item))
    if match is None:
        raise ValueError(f"shard {item!r} is not of the form '<i>-of-<n>' (as in '1-of-4')")
    number, count = int(match.group(1)), int(match.group(2))
    if not 1 <= number <= count:
        raise ValueError(f"shard {item!r}: <i> must be between 1 and <n>")
    return number - 1, count


def shard_bounds(n_rows: int, index: int, count: int) -> tuple[int, int]:
    """Rows `[start, stop)` of shard `index` of `count`: contiguous, sizes differ by at most one.

    Contiguous blocks keep the rows of every shard in input order, so concatenating the shards
    in shard order gives back the input order exactly.
    """
    size, extra = divmod(n_rows, count)
    start = index * size + min(index, extra)
    return start, start + size + (index < extra)


def batch_aligned_rows(
    lengths: Sequence[int], batch_size: int, index: int, count: int
) -> list[int]:
    """Rows (ascending) of shard `index` of `count` when rows are batched by length: a stable
    sort by `lengths` cut into batches of `batch_size` (as `rewardcond.decoding.complete` cuts
    them), of which the shard takes a contiguous run (`shard_bounds` over the batches).

    Batching the shard's rows the same way then forms exactly the single job's batches, so every
    row is computed in the same batch, padded to the same width, whatever the sharding.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n_batches = -(-len(order) // batch_size)
    first, last = shard_bounds(n_batches, index, count)
    return sorted(order[first * batch_size : last * batch_size])


def take_shard(frame: pd.DataFrame, item: str) -> pd.DataFrame:
    """The rows of `frame` that shard `item` (`"<i>-of-<n>"`) processes, index reset."""
    start, stop = shard_bounds(len(frame), *parse_shard(item))
    return frame.iloc[start:stop].reset_index(drop=True)


def shard_device(device: str, item: str) -> str:
    """The device of shard job `item`: with several GPUs visible, GPU (i - 1) mod their number.

    Snakemake counts GPUs (`resources: gpu=1`) but does not hand them out, so shard jobs running
    side by side on one machine would all take cuda:0; spreading shard i over GPU i mod count
    puts N concurrent shards on N GPUs. A SLURM job sees only its own GPU, hence cuda.
    """
    resolved = resolve_device(device)
    if resolved != "cuda":
        return resolved
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{parse_shard(item)[0] % count}" if count > 1 else "cuda"


def merge_shards(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    group_by: Sequence[str] = (),
    order_by: str | None = None,
) -> pd.DataFrame:
    """Concatenate shard Parquet files (named `...<i>-of-<n>...`) in shard order into `output`.

    With `order_by`, a column that shards of a sharded job carry (e.g. `row`, each row's position
    in the job's input, when shards take rows that are not one block), rows are put in its order
    and the column dropped; a single unsharded file need not have it.

    With `group_by`, a shard holds one block of rows per group (e.g. per generation pass, each
    over the shard's prompts); the blocks are then regrouped, groups in order of first
    appearance, shards in order within a group, as the unsharded job writes them.
    Every shard 1..n must be present exactly once, with one `n`; anything else is an error
    naming what is missing, so a partial merge never looks complete.
    """
    if not paths:
        raise ValueError("merge_shards needs at least one shard file")
    by_index = {}
    counts = set()
    for path in paths:
        index, count = parse_shard(Path(path).name)
        if index in by_index:
            raise ValueError(f"shard {index + 1}-of-{count} given twice: {by_index[index]}, {path}")
        by_index[index] = path
        counts.add(count)
    if len(counts) != 1:
        raise ValueError(f"shard files disagree on the number of shards: {sorted(counts)}")
    (count,) = counts
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        names = ", ".join(f"{index + 1}-of-{count}" for index in missing)
        raise ValueError(f"missing shard(s) {names} to merge into {output}")
    frames = [pd.read_parquet(by_index[index]) for index in range(count)]
    # An empty shard (fewer rows than shards) carries no dtypes worth concatenating.
    frame = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    if order_by is not None and (count > 1 or order_by in frame.columns):
        if order_by not in frame.columns:
            raise ValueError(f"shards to merge into {output} have no {order_by!r} column")
        frame = frame.sort_values(order_by, kind="stable").drop(columns=order_by)
        frame = frame.reset_index(drop=True)
    if group_by:
        groups = frame[list(group_by)].apply(tuple, axis=1)
        rank = {group: order for order, group in enumerate(dict.fromkeys(groups))}
        frame = frame.iloc[groups.map(rank).argsort(kind="stable")].reset_index(drop=True)
    write_parquet(output, frame)
    return frame


def merge_generation_shards(shard_paths, output_path) -> pd.DataFrame:
    """Join the shards of the generation stage (`rewardcond.summaries.generate_method`, split by
    prompt) into the single-job table.

    A job writes pass by pass (target, sample), each pass over its prompts in order (with
    several shards, each row's prompt position in `row`); the merge puts every pass back
    together, prompts in their order. Greedy decoding gives the same tokens either way (a shard
    forms the single job's batches: `batch_aligned_rows`); sampled text does not, as each job
    seeds its passes from the start.
    """
    return merge_shards(
        shard_paths, output_path, group_by=["target_name", "sample"], order_by="row"
    )

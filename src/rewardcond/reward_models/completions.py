"""The `score_completions` stage: the reward of every completion of the prepared data, in shards
that `merge_scored_shards` joins into the single-job table, bit for bit.

A shard takes whole length-bucketed batches of the plan made over all rows
(`RewardModelScorer.score_detailed`), not a block of rows: a block would form other batches,
pad rows to other widths and move the last bits of their rewards.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_json, write_parquet
from rewardcond.distributed import merge_shards, parse_shard
from rewardcond.reward_models.inputs import post_fields

logger = logging.getLogger(__name__)


def score_completions(
    *,
    completions_path: str | os.PathLike,
    posts_path: str | os.PathLike,
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
    scorer,
    shard: str = "1-of-1",
) -> dict:
    """The `score_completions` stage: every completion scored, plus a report of what happened.

    Output = the completions table + `reward` (float64, raw), `reward_model` (identity) and
    `truncated` (bool), in the input's row order; rows skipped as empty are left out and counted.
    `shard` ("<i>-of-<n>") scores only the rows of its share of the batches (see the module
    docstring); with n > 1 its table also has `row`, each row's position in the input, by which
    `merge_scored_shards` puts the shards back into the single-job output.
    """
    index, count = parse_shard(shard)
    completions = pd.read_parquet(completions_path)
    posts = pd.read_parquet(posts_path).set_index("post_id", drop=False)
    missing = ~completions["post_id"].isin(posts.index)
    if missing.any():
        raise ValueError(
            f"{completions_path}: {int(missing.sum())} rows have a post_id missing from "
            f"{posts_path}, e.g. {completions['post_id'][missing].iloc[0]!r}"
        )
    started = time.perf_counter()
    result = scorer.score_detailed(
        post_fields(posts.loc[completions["post_id"]]),
        completions["text"].tolist(),
        names=[f"completion_id {c}" for c in completions["completion_id"]],
        shard=(index, count),
    )
    seconds = time.perf_counter() - started
    mine = result.in_shard
    scored = completions.assign(
        reward=result.rewards, reward_model=scorer.identity, truncated=result.truncated
    )
    if count > 1:
        scored["row"] = np.arange(len(scored), dtype=np.int64)
    scored = scored[mine & ~result.skipped]
    write_parquet(output_path, scored.reset_index(drop=True))
    report = {
        "reward_model": scorer.identity,
        "max_length": scorer.max_length,
        "n_in": int(mine.sum()),
        "n_scored": len(scored),
        "n_skipped_empty": int((mine & result.skipped).sum()),
        "skipped_completion_ids": completions["completion_id"][mine & result.skipped].tolist(),
        "n_truncated": int((mine & result.truncated).sum()),
        "seconds": round(seconds, 3),
        "device": scorer.device,
        "reward_by_source_split": reward_by_source_split(scored),
    }
    write_json(report_path, report)
    logger.info(
        "scored %d of %d completions in %.1f s (%d truncated, %d skipped as empty)",
        report["n_scored"],
        report["n_in"],
        seconds,
        report["n_truncated"],
        report["n_skipped_empty"],
    )
    return report


def reward_by_source_split(scored: pd.DataFrame) -> list[dict]:
    """Reward count, mean, std, min and max per completion source and split (for reports)."""
    return json.loads(
        scored.groupby(["source", "split"], dropna=False)["reward"]
        .agg(["count", "mean", "std", "min", "max"])
        .reset_index()
        .to_json(orient="records")
    )


def merge_scored_shards(
    *,
    shard_paths: Sequence[str | os.PathLike],
    report_paths: Sequence[str | os.PathLike],
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
) -> dict:
    """Join the shards of `score_completions` into its single-job output and report.

    Rows come back in input order (by the shards' `row` column, then dropped); counts add up,
    and the per-source summary is recomputed on the joined table.
    """
    reports = [json.loads(Path(path).read_text()) for path in report_paths]
    identities = {report["reward_model"] for report in reports}
    if len(identities) != 1:
        raise ValueError(f"shards were scored by different reward models: {sorted(identities)}")
    scored = merge_shards(shard_paths, output_path, order_by="row")
    report = {
        "reward_model": reports[0]["reward_model"],
        "max_length": reports[0]["max_length"],
        **{
            key: sum(r[key] for r in reports)
            for key in ("n_in", "n_scored", "n_skipped_empty", "n_truncated")
        },
        "skipped_completion_ids": [i for r in reports for i in r["skipped_completion_ids"]],
        "seconds": round(sum(r["seconds"] for r in reports), 3),
        "device": reports[0]["device"],
        "shards": len(reports),
        "reward_by_source_split": reward_by_source_split(scored),
    }
    write_json(report_path, report)
    return report

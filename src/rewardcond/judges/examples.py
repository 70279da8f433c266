"""The per-example release (issue 17 §3): every evaluated generation with its proxy reward and
each judge's score or verdict, one row per generated summary (`tables/examples.parquet`, .csv).
Researchers read examples, not only means."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rewardcond.artifacts import write_parquet, write_table
from rewardcond.judges import JUDGE_PREFIX, ROW_KEYS

log = logging.getLogger(__name__)

#: The release's columns before the judges' (`judge_<name>`, in config order).
COLUMNS = (
    "post_id", "method", "condition", "target", "sample", "text", "length", "eos",
    "proxy_reward",
)  # fmt: skip
RENAMED = {
    "target_name": "condition",
    "target_reward": "target",
    "n_tokens": "length",
    "finished": "eos",
    "reward": "proxy_reward",
}


def examples_table(
    evaluated: Sequence[pd.DataFrame], judged: Sequence[pd.DataFrame]
) -> pd.DataFrame:
    """One row per evaluated generation (method by method, in their row order): post id, method,
    condition (the target's name, `none` for a method without one), target (the target reward,
    NaN without one), sample, generated text, length (tokens), EOS (the summary ended with EOS),
    proxy reward (the run's reward model) and every `judge_<name>` column of the judged rows.

    Each judged frame must key exactly the rows of its evaluated frame (`ROW_KEYS`); ValueError
    naming the method otherwise."""
    parts = []
    for rows, judges in zip(evaluated, judged, strict=True):
        method = rows["method"].iloc[0] if len(rows) else "?"
        keys = list(ROW_KEYS)
        merged = rows.merge(judges, on=keys, how="left", validate="one_to_one", indicator=True)
        unjudged = int((merged["_merge"] != "both").sum())
        if unjudged or len(judges) != len(rows):
            raise ValueError(
                f"method {method}: {len(rows)} evaluated rows but {len(judges)} judged rows "
                f"({unjudged} evaluated rows without judgments); rerun the judge rule"
            )
        columns = [column for column in judges.columns if column.startswith(JUDGE_PREFIX)]
        part = merged.rename(columns=RENAMED)
        parts.append(part[[*COLUMNS, *columns]])
    return pd.concat(parts, ignore_index=True)


def run_examples(
    *,
    evaluated: Sequence[str | os.PathLike],
    judged: Sequence[str | os.PathLike],
    parquet_path: str | os.PathLike,
    csv_path: str | os.PathLike,
) -> pd.DataFrame:
    """Rule `examples`: `examples_table` of the evaluated and judged files (one pair per
    method), written as Parquet and CSV."""
    table = examples_table(
        [pd.read_parquet(path) for path in evaluated], [pd.read_parquet(path) for path in judged]
    )
    write_parquet(parquet_path, table)
    write_table(table, csv_path)
    log.info("wrote %s and %s (%d rows)", parquet_path, Path(csv_path).name, len(table))
    return table

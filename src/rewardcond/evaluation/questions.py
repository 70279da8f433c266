"""The seed post's two questions (issue 19 §2) as tables, from the `replicates` table
(`evaluation.replicates.replicate_tables`: means over seeds with hierarchical intervals).

- Extrapolation: can one ask for more reward than the training data holds? For `scalar` and
  `text`, the achieved RM reward and the main judge's figure at every target, beyond-max targets
  (`in_range` false) included.
- Efficiency: is a scalar reward more efficient to learn from than discrete tokens? For
  `scalar`, `tokens` and `text` trained on p % of their pool (`-f<p>` models), the main judge's
  figure at the top in-range target and Spearman(target, judge) against the training rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rewardcond.evaluation.comparisons import judge_spearman
from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.targets import IN_RANGE, Target
from rewardcond.tables import NO_TARGET

EXTRAPOLATION_METHODS = ("scalar", "text")
EFFICIENCY_METHODS = ("scalar", "tokens", "text")
#: The key of a trainset report (`trainsets/<model>.json`) holding the rows a model trained on.
ROWS_KEY = "rows"
FIGURE = ["n_seeds", "seeds", "mean", "ci_low", "ci_high"]
EXTRAPOLATION_COLUMNS = ["method", "target_name", "target_reward", "in_range", "metric", *FIGURE]
EFFICIENCY_COLUMNS = ["method", "pool_percent", "training_rows", "metric", "target_name", *FIGURE]


def training_maximum(targets: Sequence[Target]) -> float:
    """The highest in-range target (the training pool's maximum when `q100` is a target); NaN
    without in-range targets."""
    values = [target.value for target in targets if target.in_range]
    return max(values) if values else float("nan")


def extrapolation_needs(replicates: pd.DataFrame, targets: Sequence[Target]) -> str:
    """Why the extrapolation figure cannot be drawn ("" when it can): it needs a target above the
    training range and one of `EXTRAPOLATION_METHODS` on the whole pool in round 1."""
    if not any(not target.in_range for target in targets):
        return "no target beyond the training range (targets with in_range false)"
    if _plain(replicates, EXTRAPOLATION_METHODS).empty:
        return f"none of {', '.join(EXTRAPOLATION_METHODS)} in the run"
    return ""


def _plain(replicates: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    return replicates[
        replicates["method"].isin(methods) & (replicates["round"] == 1)
        & (replicates["pool_percent"] == 100)
    ]  # fmt: skip


def extrapolation_table(
    replicates: pd.DataFrame, targets: Sequence[Target], judge: HeldOutJudge | None = None
) -> pd.DataFrame:
    """One row per method (`scalar`, `text`; round 1, whole pool) x target (targets.json order)
    x metric (`achieved_reward`, and the main judge's `judge.metric`): the mean over seeds with
    its hierarchical interval. Empty (with the columns) when `extrapolation_needs` says why."""
    if extrapolation_needs(replicates, targets):
        return pd.DataFrame(columns=EXTRAPOLATION_COLUMNS)
    metrics = ["achieved_reward", *([judge.metric] if judge else [])]
    order = {target.name: i for i, target in enumerate(targets)}
    rows = _plain(replicates, EXTRAPOLATION_METHODS)
    rows = rows[rows["metric"].isin(metrics) & rows["target_name"].isin(order)].copy()
    rows["_order"] = rows["target_name"].map(order)
    rows["_metric"] = rows["metric"].map(metrics.index)
    rows = rows.sort_values(["_metric", "method", "_order"], kind="stable")
    return rows[EXTRAPOLATION_COLUMNS].reset_index(drop=True)


def training_rows(reports: Mapping[str, str | os.PathLike]) -> dict[str, int]:
    """{model: rows it trained on} from the trainset reports ({model: `trainsets/<model>.json`});
    a report without `ROWS_KEY` is left out (the efficiency figure then plots percents).

    Raises ValueError naming the file when `ROWS_KEY` is there but not a non-negative integer."""
    rows = {}
    for model, path in reports.items():
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        if ROWS_KEY not in report:
            continue
        value = report[ROWS_KEY]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{path}: {ROWS_KEY!r} is {value!r}; expected a non-negative integer")
        rows[model] = value
    return rows


def efficiency_needs(replicates: pd.DataFrame) -> str:
    """Why the efficiency figure cannot be drawn ("" when it can): it needs one of
    `EFFICIENCY_METHODS` trained (round 1) on two or more percents of its pool."""
    rows = replicates[replicates["method"].isin(EFFICIENCY_METHODS) & (replicates["round"] == 1)]
    if (rows.groupby("method")["pool_percent"].nunique() >= 2).any():
        return ""
    return "no method among " + ", ".join(EFFICIENCY_METHODS) + " trained on two or more percents"


def efficiency_table(
    replicates: pd.DataFrame,
    judge: HeldOutJudge | None,
    rows: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per method (`scalar`, `tokens`, `text`; round 1) x pool_percent x metric: the main
    judge's `judge.metric` at the group's top in-range target (highest target value; `none` for
    `tokens`) and, for the conditioned methods, Spearman(target, judge) over the in-range
    targets; mean over seeds with its hierarchical interval. `training_rows`: the rows of the
    group's trainset report (`rows`, {group name: rows}; NaN when absent). Empty (with the
    columns) when `efficiency_needs` says why, or without a judge."""
    if efficiency_needs(replicates) or judge is None:
        return pd.DataFrame(columns=EFFICIENCY_COLUMNS)
    rows = dict(rows or {})
    spearman = f"{judge_spearman(judge)}_pooled"
    parts = replicates[replicates["method"].isin(EFFICIENCY_METHODS) & (replicates["round"] == 1)]
    records = []
    for _, group in parts.groupby(["method", "pool_percent"], sort=True):
        judged = group[group["metric"] == judge.metric]
        ranged = judged[judged["in_range"].fillna(False).astype(bool)]
        top = ranged.loc[[ranged["target_reward"].idxmax()]] if not ranged.empty else judged[
            judged["target_name"] == NO_TARGET
        ]  # fmt: skip
        chosen = [top, group[(group["metric"] == spearman) & (group["target_name"] == IN_RANGE)]]
        for row in pd.concat(chosen).itertuples(index=False):
            record = row._asdict()
            record["training_rows"] = rows.get(record["group"], np.nan)
            records.append(record)
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return pd.DataFrame(columns=EFFICIENCY_COLUMNS)
    table["method"] = pd.Categorical(table["method"], EFFICIENCY_METHODS)
    table = table.sort_values(["metric", "method", "pool_percent"], kind="stable")
    table["method"] = table["method"].astype(str)
    return table[EFFICIENCY_COLUMNS].reset_index(drop=True)

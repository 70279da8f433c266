"""Reward against distance from the starting policy (issue 16 sections 2-4): the KL columns of the
published tables (`attach_kl`), the comparison of two methods at matched KL (`matched_kl`) and the
over-optimisation flags against `sft` (`overoptimisation`).

The field compares alignment methods on reward at a given KL(pi || pi_sft) (Gao, Schulman and
Hilton 2022, "Scaling laws for reward model overoptimization", who plot gold reward against
d = sqrt(KL)); KL alone does not rank methods, reward at equal KL does. The KL figures are the
`kl` rules' (`rewardcond.kl`): nats per sequence, of the policy's temperature-1 sampling
distribution (not of the greedy decoder that writes the tables' summaries), infinite where a
sample holds a token sft cannot emit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.summary import best_targets
from rewardcond.modules import split_round
from rewardcond.stats import BootstrapSettings, paired_difference
from rewardcond.tables import NO_TARGET

#: The KL columns `attach_kl` adds to `summary` (and `win_rates` carries to `winrate`).
#: `kl_sft`: the sample estimate (Monte Carlo over the policy's own samples; for best-of-N the
#: estimator of Beirami et al. 2024 from sft's log-probability of each kept summary), with its
#: bootstrap interval over prompts; `kl_sft_analytic`: best-of-N's `log N - (N - 1)/N` (NaN for
#: methods with a model of their own); `kl_estimator`: which estimator `kl_sft` is.
KL_COLUMNS = ("kl_sft", "kl_sft_ci_low", "kl_sft_ci_high", "kl_sft_analytic", "kl_estimator")
#: The method `sft` every KL is measured from; its KL is 0 by definition.
REFERENCE_METHOD = "sft"
#: The RLHF arm the main (conditioned) method is compared with at matched KL.
RLHF_METHOD = "rloo"
#: The proxy's metric compared at matched KL and against sft: (metric, row column of
#: `combine`'s frame, mean column of `summary`).
PROXY_METRIC = ("achieved_reward", "reward", "achieved_reward_mean")


def reward_metrics(judge: HeldOutJudge | None) -> list[tuple[str, str, str]]:
    """Metrics compared at matched KL: the held-out `judge`'s (its `metric`, per-row
    `row_column` and summary column `metric`: a score judge's score, an llm judge's win rate
    against the reference), then the proxy's (`PROXY_METRIC`); the proxy's only without a
    judge."""
    judged = [] if judge is None else [(judge.metric, judge.row_column, judge.metric)]
    return [*judged, PROXY_METRIC]


def judge_difference_columns(judge: HeldOutJudge) -> list[str]:
    """The over-optimisation table's columns of `judge`: `<metric>_difference` and its interval
    `<metric>_difference_ci_low` / `_ci_high` (e.g. `judge_deberta_mean_difference`)."""
    stem = f"{judge.metric}_difference"
    return [stem, f"{stem}_ci_low", f"{stem}_ci_high"]


MATCHED_KL_COLUMNS = [
    "metric",
    "method",
    "target_name",
    "kl_sft",
    "other",
    "other_target_name",
    "other_kl_sft",
    "method_value",
    "other_value",
    "difference",
    "ci_low",
    "ci_high",
    "n_prompts",
    "significant",
]


def overoptimisation_columns(judge: HeldOutJudge | None) -> list[str]:
    """The over-optimisation table's columns: with a judge its difference columns
    (`judge_difference_columns`) and the flag `overoptimised`; without one neither."""
    head = ["method", "target_name", "target_reward", "kl_sft", "rm_difference", "rm_ci_low",
            "rm_ci_high"]  # fmt: skip
    if judge is None:
        return [*head, "n_prompts"]
    return [*head, *judge_difference_columns(judge), "n_prompts", "overoptimised"]


def attach_kl(summary: pd.DataFrame, kl_summary: pd.DataFrame) -> pd.DataFrame:
    """`summary` with the `KL_COLUMNS`, from `rewardcond.kl.summary.summarize_kl`'s frame (one row
    per method and condition, columns kl, kl_low, kl_high, kl_bound, estimator).

    Raises:
        ValueError: naming the method and condition of every summary row without a KL row (a
            missing `kl/<method>.parquet`, or one written for other targets), or of KL rows for
            a method and condition the summary has not.
    """
    key = ["method", "target_name"]
    kl = kl_summary.rename(
        columns={
            "kl": "kl_sft",
            "kl_low": "kl_sft_ci_low",
            "kl_high": "kl_sft_ci_high",
            "kl_bound": "kl_sft_analytic",
            "estimator": "kl_estimator",
        }
    )[[*key, *KL_COLUMNS]]
    merged = summary.merge(kl, on=key, how="left", indicator=True, validate="one_to_one")
    missing = merged.loc[merged["_merge"] == "left_only", key].values.tolist()
    extra = kl.merge(summary[key], on=key, how="left", indicator=True)
    extra = extra.loc[extra["_merge"] == "left_only", key].values.tolist()
    if missing or extra:
        raise ValueError(
            f"kl: no KL row for (method, target) {missing} of the summary"
            + (f"; KL rows for {extra}, which the summary has not" if extra else "")
        )
    return merged.drop(columns="_merge")


def _per_prompt(frame: pd.DataFrame, method: str, target_name: str, column: str) -> pd.Series:
    rows = frame[(frame["method"] == method) & (frame["target_name"] == target_name)]
    return rows.groupby("post_id")[column].mean()


def closest_kl_target(summary: pd.DataFrame, method: str, kl: float) -> str | None:
    """`method`'s target whose finite `kl_sft` is closest to `kl` (the lower target reward on a
    tie), or None when it has none."""
    rows = summary[(summary["method"] == method) & np.isfinite(summary["kl_sft"])]
    if rows.empty or not np.isfinite(kl):
        return None
    distance = (rows["kl_sft"] - kl).abs()
    ranked = rows.assign(distance=distance).sort_values(
        ["distance", "target_reward"], kind="stable"
    )
    return str(ranked["target_name"].iloc[0])


def matched_kl(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    settings: BootstrapSettings,
    method: str | None,
    other: str = RLHF_METHOD,
    judge: HeldOutJudge | None = None,
) -> pd.DataFrame:
    """`method` (a conditioned method, e.g. `scalar`) against `other` (the RLHF arm `rloo`) at
    matched KL: `method` at its condition whose `kl_sft` is closest to `other`'s at its headline
    target, the paired bootstrap difference (method minus other, over shared prompts) of the
    held-out `judge`'s figure (`reward_metrics`: a score judge's score, an llm judge's win rate
    against the reference; per prompt from `attach_judges`' columns of `frame`) and of
    reward-model reward; of reward-model reward only without a judge. Empty
    (`MATCHED_KL_COLUMNS`) when either method is absent or has no finite KL.
    """
    records = []
    methods = set(summary["method"])
    if method in methods and other in methods and method != other:
        chosen = best_targets(summary)
        other_row = summary[
            (summary["method"] == other) & (summary["target_name"] == chosen[other])
        ]
        other_kl = float(other_row["kl_sft"].iloc[0])
        target = closest_kl_target(summary, method, other_kl)
        if target is not None:
            row = summary[(summary["method"] == method) & (summary["target_name"] == target)]
            for metric, column, mean_column in reward_metrics(judge):
                a = _per_prompt(frame, method, target, column)
                b = _per_prompt(frame, other, chosen[other], column)
                difference, low, high, n_prompts = paired_difference(
                    a, b, n_resamples=settings.n_resamples, level=settings.level, seed=settings.seed
                )
                records.append(
                    {
                        "metric": metric,
                        "method": method,
                        "target_name": target,
                        "kl_sft": float(row["kl_sft"].iloc[0]),
                        "other": other,
                        "other_target_name": chosen[other],
                        "other_kl_sft": other_kl,
                        "method_value": float(row[mean_column].iloc[0]),
                        "other_value": float(other_row[mean_column].iloc[0]),
                        "difference": difference,
                        "ci_low": low,
                        "ci_high": high,
                        "n_prompts": n_prompts,
                        "significant": bool(low > 0 or high < 0),
                    }
                )
    return pd.DataFrame.from_records(records, columns=MATCHED_KL_COLUMNS)


def overoptimisation(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    settings: BootstrapSettings,
    judge: HeldOutJudge | None = None,
) -> pd.DataFrame:
    """Every method x condition against `sft` (paired bootstrap over shared prompts): the
    differences in reward-model reward and in the held-out `judge`'s figure (a score judge's
    score, an llm judge's win rate against the reference; columns `judge_difference_columns`)
    with their intervals; `overoptimised` when the reward-model difference's interval lies above
    0 and the judge's below 0 (the proxy gain is not confirmed: the judge falls). Without a
    judge (`evaluate.judges` empty) the reward-model columns only, and no flag
    (`overoptimisation_columns`). Empty without `sft`.
    """
    records = []
    columns = overoptimisation_columns(judge)
    sides = [("rm", "reward", ["rm_difference", "rm_ci_low", "rm_ci_high"])]
    if judge is not None:
        sides.append(("judge", judge.row_column, judge_difference_columns(judge)))
    if REFERENCE_METHOD in set(summary["method"]):
        base = {column: _per_prompt(frame, REFERENCE_METHOD, NO_TARGET, column)
                for _, column, _ in sides}  # fmt: skip
        for row in summary[summary["method"] != REFERENCE_METHOD].itertuples(index=False):
            record = {
                "method": row.method,
                "target_name": row.target_name,
                "target_reward": row.target_reward,
                "kl_sft": row.kl_sft,
            }
            for side, column, names in sides:
                a = _per_prompt(frame, row.method, row.target_name, column)
                figures = paired_difference(
                    a,
                    base[column],
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
                record |= dict(zip(names, figures[:3], strict=True))
                if side == "rm":
                    record["n_prompts"] = figures[3]
            if judge is not None:
                difference, _, judge_high = judge_difference_columns(judge)
                record["overoptimised"] = (
                    pd.NA  # no judged prompt shared with sft (e.g. only malformed llm answers)
                    if math.isnan(record[difference])
                    else bool(record["rm_ci_low"] > 0 and record[judge_high] < 0)
                )
            records.append(record)
    table = pd.DataFrame.from_records(records, columns=columns)
    if judge is not None:
        table["overoptimised"] = table["overoptimised"].astype("boolean")
    return table


def onset(overoptimised: pd.DataFrame, method: str) -> pd.Series | None:
    """The lowest-KL condition of `method` flagged in `overoptimisation`'s table (where, moving
    away from sft, over-optimisation starts), or None when none is."""
    if "overoptimised" not in overoptimised.columns:  # no held-out judge: nothing flagged
        return None
    rows = overoptimised[
        (overoptimised["method"] == method) & overoptimised["overoptimised"].fillna(False)
    ]
    if rows.empty:
        return None
    return rows.sort_values(["kl_sft", "target_reward"], kind="stable").iloc[0]


def frontier_points(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The frontier figure's series: (label, rows); one curve per conditioned method across its
    targets (in target order), one `best-of-N` curve through `sft` (N = 1) and every `bon<N>`
    (in KL order), one point per other method (`sft` included, at KL 0)."""
    series = []
    bon = summary[summary["method"].str.fullmatch(r"bon\d+")]
    for method in summary["method"].unique():
        if method in set(bon["method"]):
            continue
        rows = summary[summary["method"] == method]
        series.append((method, rows.sort_values("target_reward", kind="stable")))
    if not bon.empty:
        start = summary[summary["method"] == REFERENCE_METHOD]
        series.append(("best-of-N", pd.concat([start, bon]).sort_values("kl_sft", kind="stable")))
    return series


def round_paths(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The online rounds of each method (issue 18) as a path: (method, rows), one row per round
    (the method itself is round 1, `<method>-r<r>` round r, `rewardcond.modules.split_round`),
    in round order, each at the round's top in-range target (the highest in-range
    target_reward); a `round` column is added. Only methods with a round >= 2 have a path."""
    rounds = summary.assign(
        base=[split_round(method)[0] for method in summary["method"]],
        round=[split_round(method)[1] for method in summary["method"]],
    )
    in_range = rounds[rounds["in_range"].fillna(False).astype(bool)]
    paths = []
    for base, rows in in_range.groupby("base", sort=False):
        if rows["round"].max() < 2:
            continue
        top = rows.sort_values("target_reward", kind="stable").groupby("round").tail(1)
        paths.append((base, top.sort_values("round").drop(columns="base")))
    return paths


def kl_label(row: pd.Series | dict) -> str:
    """A KL figure for text: `0.123 nats [0.100, 0.150]`, `inf` when infinite."""
    kl = row["kl_sft"]
    if pd.isna(kl):
        return "n/a"
    if math.isinf(kl):
        return "inf nats"
    return f"{kl:.3f} nats [{row['kl_sft_ci_low']:.3f}, {row['kl_sft_ci_high']:.3f}]"

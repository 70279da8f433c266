"""The REPORT's verdict: which method leads each headline metric, how the main method compares
with every other one, and where the reward model is over-optimised; computed from the tables."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from rewardcond.evaluation.comparisons import rankable
from rewardcond.evaluation.targets import IN_RANGE
from rewardcond.stats import MIN_PROMPTS
from rewardcond.tables import NO_TARGET

GOLD_METRICS = ("gold_reward", "winrate_gold")
NO_GOLD = (
    "No ground-truth reward in this run (real data has none): every reward and win rate here is "
    "the reward model's, a proxy."
)
METRIC_LABELS = {
    "achieved_reward": "achieved (reward-model) reward",
    "gold_reward": "gold reward",
    "winrate_rm": "win rate against the reference under the reward model",
    "winrate_gold": "win rate against the reference under gold",
    "spearman_pooled": "calibration (pooled Spearman(target, achieved), in-range targets)",
}
HEADLINES = {
    "gold_reward": "Highest gold reward",
    "winrate_rm": "Highest win rate against the reference under the reward model",
    "winrate_gold": "Highest win rate against the reference under gold",
    "spearman_pooled": "Best calibration (pooled Spearman(target, achieved), in-range targets)",
}


def fmt(value: float, digits: int = 3) -> str:
    """`value` with `digits` decimals, or "n/a" when it is missing."""
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def _interval(low: float, high: float, level: float) -> str:
    return f"[{level:.0%} CI {fmt(low)}, {fmt(high)}]"


def method_label(method: str, target_name: str) -> str:
    """`method`, or `method @ target` for a figure at one target reward."""
    return method if target_name in (NO_TARGET, IN_RANGE) else f"{method} @ {target_name}"


def _comparison_clause(row: pd.Series, level: float) -> str:
    verdict = "significant" if row["significant"] else "not significant"
    method = method_label(row["method"], row["target_name"])
    other = method_label(row["other"], row["other_target_name"])
    interval = _interval(row["ci_low"], row["ci_high"], level)
    return (
        f"{method} minus {other} = {row['difference']:+.3f} {interval}, "
        f"{verdict} (paired bootstrap over {row['n_prompts']} prompts)"
    )


def has_gold(tables: Mapping[str, pd.DataFrame]) -> bool:
    """Whether any method has a gold (ground-truth) reward: the synthetic world has one, real
    data none."""
    return bool(tables["summary"]["gold_reward_mean"].notna().any())


def verdict_lines(
    tables: Mapping[str, pd.DataFrame], level: float, main_method: str | None = None
) -> list[str]:
    """The REPORT's verdict, one Markdown bullet per finding, computed from the tables. Without
    any gold reward (real data) one line says so and no gold metric is mentioned. The best
    calibration is crowned only when its pooled Spearman is above 0: a target reward that the
    achieved one ignores or falls with is no calibration."""
    winrate, correlation, comparisons = (
        tables["winrate"],
        tables["correlation"],
        tables["comparisons"],
    )
    headline = {
        "gold_reward": (winrate, "gold_reward_mean", "gold_reward_ci_low", "gold_reward_ci_high"),
        "winrate_rm": (winrate, "winrate_rm", "winrate_rm_ci_low", "winrate_rm_ci_high"),
        "winrate_gold": (winrate, "winrate_gold", "winrate_gold_ci_low", "winrate_gold_ci_high"),
        "spearman_pooled": (
            correlation,
            "spearman_pooled",
            "spearman_pooled_ci_low",
            "spearman_pooled_ci_high",
        ),
    }
    gold = has_gold(tables)
    lines = [] if gold else [NO_GOLD]
    for metric, title in HEADLINES.items():
        if metric in GOLD_METRICS and not gold:
            continue
        table, column, low, high = headline[metric]
        usable = rankable(table, column)
        unranked = _unranked(table.drop(usable.index), column)
        if usable.empty:
            lines.append(
                f"No {METRIC_LABELS[metric]} to rank: {unranked}."
                if unranked
                else f"No {METRIC_LABELS[metric]}: no method has a value for it in this run."
            )
            continue
        best = usable.loc[usable[column].idxmax()]
        target = best.get("target_name", NO_TARGET)
        if metric == "spearman_pooled" and not best[column] > 0:
            # Asking for more reward gives no more (or less): nothing to crown, however it ranks.
            line = (
                f"No method is calibrated: the highest {METRIC_LABELS[metric]} is "
                f"{fmt(best[column])} {_interval(best[low], best[high], level)} "
                f"({method_label(best['method'], target)}), not above 0: asking for a higher "
                "reward does not give a higher one."
            )
            lines.append(line + (f" Not ranked: {unranked}." if unranked else ""))
            continue
        line = (
            f"{title}: **{method_label(best['method'], target)}** with "
            f"{fmt(best[column])} {_interval(best[low], best[high], level)}"
        )
        if metric == "spearman_pooled":
            line += f", calibration MAE |achieved - target| {fmt(best['calibration_mae'])}"
        against = comparisons[
            (comparisons["metric"] == metric) & (comparisons["method"] == best["method"])
        ]
        if against.empty:
            line += "; no other method to compare with."
        else:
            line += "; " + "; ".join(
                _comparison_clause(row, level) for _, row in against.iterrows()
            )
            line += "."
        if unranked:
            line += f" Not ranked: {unranked}."
        lines.append(line)
    if main_method is not None:
        for metric in ("achieved_reward", "gold_reward", "winrate_rm", "winrate_gold"):
            if metric in GOLD_METRICS and not gold:
                continue
            rows = comparisons[
                (comparisons["metric"] == metric) & (comparisons["method"] == main_method)
            ]
            if rows.empty:
                continue
            clauses = []
            for _, row in rows.iterrows():
                if not row["significant"]:
                    outcome = "ties with"
                elif row["difference"] > 0:
                    outcome = "beats"
                else:
                    outcome = "loses to"
                clauses.append(f"{outcome} {row['other']} ({_comparison_clause(row, level)})")
            lines.append(f"{main_method} on {METRIC_LABELS[metric]}: " + "; ".join(clauses) + ".")
    lines.extend(overoptimisation_lines(correlation, level))
    return lines


def _unranked(rows: pd.DataFrame, column: str) -> str:
    """Why each of `rows` (left out by `rankable`) is not ranked on `column`, "; "-joined; rows
    with no value and no stated reason (e.g. no gold reward in the run) are not listed."""
    reasons = []
    for _, row in rows.iterrows():
        if column.endswith("_pooled"):
            reason = row[column.replace("_pooled", "_note")]
        elif pd.notna(row[column]):
            reason = f"{row['n_prompts']} prompts, fewer than {MIN_PROMPTS}"
        else:
            reason = ""
        if reason:
            reasons.append(
                f"{method_label(row['method'], row.get('target_name', NO_TARGET))} ({reason})"
            )
    return "; ".join(reasons)


def overoptimisation_lines(correlation: pd.DataFrame, level: float) -> list[str]:
    """A plain sentence for every conditioned method whose reward-model score rises with the
    target while its gold reward falls (pooled Spearman over the in-range targets), both with
    intervals that exclude zero. Figures with a note (undefined, or from too few prompts: see
    `spearman_note`) are left out."""
    lines, not_diverging = [], []
    ranked = (correlation["spearman_note"] == "") & (correlation["spearman_gold_note"] == "")
    for _, row in correlation[ranked].iterrows():
        if not (row["spearman_pooled_ci_low"] > 0 and row["spearman_gold_pooled_ci_high"] < 0):
            not_diverging.append(row["method"])
            continue
        proxy = _interval(row["spearman_pooled_ci_low"], row["spearman_pooled_ci_high"], level)
        gold = _interval(
            row["spearman_gold_pooled_ci_low"], row["spearman_gold_pooled_ci_high"], level
        )
        lines.append(
            f"**Over-optimisation in {row['method']}**: asking for a higher reward raises the "
            f"reward-model score (Spearman {fmt(row['spearman_pooled'])} {proxy}) while the "
            f"gold reward falls (Spearman {fmt(row['spearman_gold_pooled'])} {gold}). The "
            "policy is exploiting the proxy: this is over-optimisation."
        )
    if not_diverging:
        lines.append(
            "Proxy and gold do not move in significantly opposite directions with the target for: "
            + ", ".join(not_diverging)
            + "."
        )
    return lines

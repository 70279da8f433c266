"""The REPORT's text across training seeds (issue 19): the verdict's main-method bullets from the
paired differences across seeds (`evaluation.replicates.replicate_comparisons`), the collapses
(`evaluation.collapses`) and the section "What the seed post asked" (`evaluation.questions`)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.tables import NO_TARGET


def _num(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"


def _label(method: str, target_name: str) -> str:
    return method if target_name == NO_TARGET else f"{method} @ {target_name}"


def _ahead(row: pd.Series) -> str:
    return f"{row['n_ahead']} of {row['n_seeds']} seeds ahead"


def seed_lines(across: pd.DataFrame, labels: Mapping[str, str], level: float) -> list[str]:
    """The verdict's bullets on the main method against every other method when the run has
    replicates: a difference is called ("beats" / "loses to") only when its hierarchical
    interval excludes 0 and every seed's own difference has its sign (`called`); a difference
    whose seeds disagree in sign is "not consistent across seeds (k of n seeds ahead)"; one whose
    seeds agree but whose interval includes 0 is a tie. `across`: `replicate_comparisons`'
    table; `labels`: metric -> label (`verdict.metric_labels`)."""
    lines = []
    for metric, label in labels.items():
        rows = across[across["metric"] == metric]
        if rows.empty:
            continue
        groups = {"beats": [], "loses to": [], "ties with": [], "against": []}
        for _, row in rows.iterrows():
            other = _label(row["other"], row["other_target_name"])
            figure = f"{row['difference']:+.3f} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
            if row["called"]:
                outcome = "beats" if row["difference"] > 0 else "loses to"
                groups[outcome].append(f"{other} ({figure}, {_ahead(row)})")
            elif row["consistent"]:
                groups["ties with"].append(f"{other} ({_ahead(row)})")
            else:
                groups["against"].append(
                    f"{other}: not consistent across seeds ({_ahead(row)}; {figure})"
                )
        first = rows.iloc[0]
        clauses = "; ".join(f"{key} {', '.join(names)}" for key, names in groups.items() if names)
        lines.append(
            f"{_label(first['method'], first['target_name'])} on {label}, across seeds (paired "
            f"by seed and prompt, hierarchical {level:.0%} intervals; called only when the "
            f"interval excludes 0 and every seed agrees in sign): {clauses}."
        )
    return lines


def collapse_lines(collapses: pd.DataFrame, rule_text: str) -> list[str]:
    """One bullet: the collapsed replicates per method (`collapses.collapse_table`), or that none
    collapsed; collapsed replicates stay in the means over seeds."""
    hit = collapses[collapses["n_collapsed"] > 0]
    if hit.empty:
        return [f"Collapses ({rule_text}): none of {int(collapses['n_seeds'].sum())} replicates."]
    named = "; ".join(
        f"{row['method']} {row['n_collapsed']} of {row['n_seeds']} ({row['why']})"
        for _, row in hit.iterrows()
    )
    return [
        f"Collapses ({rule_text}): {named}. Collapsed replicates stay in the means over seeds "
        "(`tables/collapses.csv`)."
    ]


def _figure(rows: pd.DataFrame, target: str) -> str:
    row = rows[rows["target_name"] == target]
    if row.empty:
        return "n/a"
    row = row.iloc[0]
    return f"{_num(row['mean'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def extrapolation_answer(table: pd.DataFrame, judge: HeldOutJudge | None) -> list[str]:
    """Per method: RM and judge at the highest in-range target and at each beyond-max target,
    and whether asking beyond the maximum gives more (holds: the farthest target's RM interval is
    above the in-range top's mean), the same (saturates: the intervals overlap) or less
    (breaks: its interval is below the top's mean)."""
    lines = []
    for method, rows in table.groupby("method", sort=False):
        rm = rows[rows["metric"] == "achieved_reward"]
        ranged = rm[rm["in_range"].astype(bool)]
        beyond = rm[~rm["in_range"].astype(bool)].sort_values("target_reward")
        if ranged.empty or beyond.empty:
            continue
        top = ranged.loc[ranged["target_reward"].idxmax()]
        far = beyond.iloc[-1]
        verdict = (
            "holds" if far["ci_low"] > top["mean"]
            else "breaks" if far["ci_high"] < top["mean"] else "saturates"
        )  # fmt: skip
        judged = rows[rows["metric"] == judge.metric] if judge else rows.iloc[0:0]
        parts = []
        for target in [top["target_name"], *beyond["target_name"]]:
            text = f"at {target}: RM {_figure(rm, target)}"
            if judge is not None:
                text += f", {judge.label} {_figure(judged, target)}"
            parts.append(text)
        lines.append(
            f"{method} ({rm['n_seeds'].max()} seeds): {'; '.join(parts)}; asking beyond the "
            f"maximum {verdict} (RM at {far['target_name']} against {top['target_name']})."
        )
    return lines


def efficiency_answer(table: pd.DataFrame, judge: HeldOutJudge) -> list[str]:
    """Per method: the judge's figure and Spearman(target, judge) at each percent of the pool."""
    lines = []
    for method, rows in table.groupby("method", sort=False):
        parts = []
        for percent, part in rows.groupby("pool_percent", sort=True):
            size = part["training_rows"].iloc[0]
            where = f"{percent}%" + ("" if pd.isna(size) else f" ({int(size)} rows)")
            figures = "; ".join(
                f"{'Spearman' if row['metric'] != judge.metric else judge.label} "
                f"{_num(row['mean'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
                for _, row in part.iterrows()
            )
            parts.append(f"{where}: {figures}")
        lines.append(f"{method}: " + "; ".join(parts) + ".")
    return lines


def seed_post_section(
    extrapolation: pd.DataFrame,
    efficiency: pd.DataFrame,
    judge: HeldOutJudge | None,
    why_not: Mapping[str, str],
) -> str:
    """The REPORT section "What the seed post asked": the two answers from the tables, or why a
    question was not asked in this run (`why_not`: {"extrapolation", "efficiency"} -> reason)."""
    lines = ["## What the seed post asked", ""]
    lines.append(
        "1. Can one ask for more reward than the training data holds? (`plots/extrapolation.png`,"
        " `tables/extrapolation.csv`; means over seeds with hierarchical intervals)"
    )
    answer = extrapolation_answer(extrapolation, judge) if extrapolation.size else []
    lines += [f"   - {line}" for line in answer] or [
        f"   - Not asked in this run: {why_not.get('extrapolation') or 'no rows'}."
    ]
    lines.append(
        "2. Is a scalar reward more efficient to learn from than discrete tokens? "
        "(`plots/efficiency.png`, `tables/efficiency.csv`)"
    )
    answer = efficiency_answer(efficiency, judge) if (efficiency.size and judge) else []
    lines += [f"   - {line}" for line in answer] or [
        f"   - Not asked in this run: {why_not.get('efficiency') or 'no held-out judge'}."
    ]
    lines.append(
        "\nThese answers are about this run's world and models; on the synthetic world they "
        "prove nothing about real summarisation."
    )
    return "\n".join(lines) + "\n"

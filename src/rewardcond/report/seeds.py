"""The REPORT's text across training seeds (issue 19): the verdict's main-method bullets from the
paired differences across seeds (`evaluation.replicates.replicate_comparisons`), the collapses
(`evaluation.collapses`) and the section "What the seed post asked" (`evaluation.questions`)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.modules import ModelName
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
    across = across[across["method"] == across["method"].iloc[0]]  # the main method's rows
    lines = [
        "With replicates no trained model (one seed) is crowned: the best of several seeds' "
        "models is the luckiest seed (each model's own rankings are in `tables/comparisons.csv`); "
        "the main method's claims below hold across seeds (`tables/seed_comparisons.csv`)."
    ]
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


def headline_table(
    replicates: pd.DataFrame, collapses: pd.DataFrame, judge: HeldOutJudge | None
) -> pd.DataFrame:
    """The REPORT's table across seeds: per group at its headline target (`collapses`'
    `target_name`), the mean over seeds [hierarchical interval] of RM reward, the main judge's
    figure and KL from sft, Spearman(target, RM) over the in-range targets, and the collapsed
    replicates (k of n)."""
    columns = {"achieved_reward": "RM reward", "kl_sft": "KL from sft",
               "spearman_pooled": "Spearman(target, RM)"}  # fmt: skip
    if judge is not None:
        columns = {"achieved_reward": "RM reward", judge.metric: judge.label, **columns}
    records = []
    for _, row in collapses.iterrows():
        rows = replicates[replicates["group"] == row["method"]]
        record = {"method": _label(row["method"], row["target_name"]), "seeds": row["n_seeds"]}
        for metric, title in columns.items():
            part = rows[rows["metric"] == metric]
            target = "in_range" if metric == "spearman_pooled" else row["target_name"]
            record[title] = _figure(part, target) if not part.empty else ""
        record["collapsed"] = f"{row['n_collapsed']} of {row['n_seeds']}"
        records.append(record)
    return pd.DataFrame.from_records(records)


def _figure(rows: pd.DataFrame, target: str) -> str:
    row = rows[rows["target_name"] == target]
    if row.empty:
        return "n/a"
    row = row.iloc[0]
    return f"{_num(row['mean'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"


def _trend(rows: pd.DataFrame, far: str, top: str) -> str:
    """holds / saturates / breaks: `rows`' figure at target `far` against target `top`."""
    at = rows.set_index("target_name")
    if far not in at.index or top not in at.index:
        return "n/a"
    if at.loc[far, "ci_low"] > at.loc[top, "mean"]:
        return "holds"
    return "breaks" if at.loc[far, "ci_high"] < at.loc[top, "mean"] else "saturates"


def extrapolation_answer(table: pd.DataFrame, judge: HeldOutJudge | None) -> list[str]:
    """Per method: RM and judge at the highest in-range target and at each beyond-max target,
    and, on each, whether asking beyond the maximum gives more (holds: the farthest target's
    interval is above the in-range top's mean), the same (saturates) or less (breaks: its
    interval is below the top's mean)."""
    lines = []
    for method, rows in table.groupby("method", sort=False):
        rm = rows[rows["metric"] == "achieved_reward"]
        ranged = rm[rm["in_range"].astype(bool)]
        beyond = rm[~rm["in_range"].astype(bool)].sort_values("target_reward")
        if ranged.empty or beyond.empty:
            continue
        top = ranged.loc[ranged["target_reward"].idxmax()]
        far = beyond.iloc[-1]
        judged = rows[rows["metric"] == judge.metric] if judge else rows.iloc[0:0]
        trends = [f"RM {_trend(rm, far['target_name'], top['target_name'])}"]
        if not judged.empty:
            trends.append(f"{judge.label} {_trend(judged, far['target_name'], top['target_name'])}")
        parts = []
        for target in [top["target_name"], *beyond["target_name"]]:
            text = f"at {target}: RM {_figure(rm, target)}"
            if judge is not None:
                text += f", {judge.label} {_figure(judged, target)}"
            parts.append(text)
        lines.append(
            f"{method} ({rm['n_seeds'].max()} seeds): {'; '.join(parts)}; asking beyond the "
            f"maximum ({far['target_name']} against {top['target_name']}): {', '.join(trends)}."
        )
    return lines


def efficiency_answer(
    table: pd.DataFrame, judge: HeldOutJudge, across: pd.DataFrame | None = None
) -> list[str]:
    """Per method: the judge's figure and Spearman(target, judge) at each percent of the pool;
    then, at each percent both have, scalar against tokens on the judge's figure: paired by seed
    and prompt where `across` (`replicates.replicate_comparisons`, with the pairs of
    `efficiency_pairs`) has the pair, called as the verdict calls (`seed_lines`); else ahead only
    when their unpaired intervals do not overlap."""
    lines, spearman = [], f"Spearman(target, {judge.name})"
    for method, rows in table.groupby("method", sort=False):
        parts = []
        for percent, part in rows.groupby("pool_percent", sort=True):
            size = part["training_rows"].iloc[0]
            where = f"{percent}%" + ("" if pd.isna(size) else f" ({int(size)} rows)")
            figures = "; ".join(
                f"{spearman if row['metric'] != judge.metric else judge.label} "
                f"{_num(row['mean'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
                for _, row in part.iterrows()
            )
            parts.append(f"{where}: {figures}")
        lines.append(f"{method}: " + "; ".join(parts) + ".")
    judged = table[table["metric"] == judge.metric].set_index(["method", "pool_percent"])
    for percent in sorted(set(table["pool_percent"])):
        if not {("scalar", percent), ("tokens", percent)} <= set(judged.index):
            continue
        scalar, tokens = judged.loc[("scalar", percent)], judged.loc[("tokens", percent)]
        paired = _pair_row(across, percent, judge.metric)
        if paired is not None:
            figure = (
                f"{paired['difference']:+.3f} [{_num(paired['ci_low'])}, {_num(paired['ci_high'])}]"
            )
            if paired["called"]:
                ahead = "scalar" if paired["difference"] > 0 else "tokens"
                outcome = (
                    f"{ahead} is ahead, paired by seed and prompt ({figure}, {_ahead(paired)})"
                )
            elif paired["consistent"]:
                outcome = f"a tie, paired by seed and prompt ({figure}, {_ahead(paired)})"
            else:
                outcome = f"not consistent across seeds ({_ahead(paired)}; {figure})"
        elif scalar["ci_low"] > tokens["ci_high"] or tokens["ci_low"] > scalar["ci_high"]:
            ahead = "scalar" if scalar["mean"] > tokens["mean"] else "tokens"
            outcome = f"{ahead} is ahead (the intervals do not overlap)"
        else:
            outcome = "the intervals overlap: no difference resolved (unpaired, conservative)"
        lines.append(
            f"At {percent}% of the pool, {judge.label}: scalar {_num(scalar['mean'])} against "
            f"tokens {_num(tokens['mean'])}; {outcome}."
        )
    return lines


def efficiency_pairs(percents) -> list[tuple[str, str]]:
    """(scalar, tokens) groups at each pool percent below 100 (`replicate_comparisons`'
    `extra_pairs`; at 100 % the main method's own rows hold the pair when scalar is main)."""
    return [
        (str(ModelName("scalar", percent=p)), str(ModelName("tokens", percent=p)))
        for p in sorted(set(percents))
        if p < 100
    ]


def _pair_row(across: pd.DataFrame | None, percent: int, metric: str) -> pd.Series | None:
    """`across`'s row of scalar against tokens at `percent` of the pool on `metric`, or None."""
    if across is None or across.empty:
        return None
    group, other = (str(ModelName(m, percent=int(percent))) for m in ("scalar", "tokens"))
    rows = across[
        (across["method"] == group) & (across["other"] == other) & (across["metric"] == metric)
    ]
    return None if rows.empty else rows.iloc[0]


def seed_post_section(
    extrapolation: pd.DataFrame,
    efficiency: pd.DataFrame,
    judge: HeldOutJudge | None,
    why_not: Mapping[str, str],
    across: pd.DataFrame | None = None,
) -> str:
    """The REPORT section "What the seed post asked": the two answers from the tables, or why a
    question was not asked in this run (`why_not`: {"extrapolation", "efficiency"} -> reason).
    `across`: the seed comparisons, for the paired scalar-against-tokens answers."""
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
    answer = efficiency_answer(efficiency, judge, across) if (efficiency.size and judge) else []
    lines += [f"   - {line}" for line in answer] or [
        f"   - Not asked in this run: {why_not.get('efficiency') or 'no held-out judge'}."
    ]
    lines.append(
        "\nThese answers are about this run's world and models; on the synthetic world they "
        "prove nothing about real summarisation."
    )
    return "\n".join(lines) + "\n"

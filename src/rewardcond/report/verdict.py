"""The REPORT's verdict: which method leads each headline metric, how the main method compares
with every other one, and where the reward model is over-optimised; computed from the tables."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rewardcond.evaluation.comparisons import judge_spearman, rankable
from rewardcond.evaluation.frontier import RLHF_METHOD, judge_difference_columns, onset
from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.targets import IN_RANGE
from rewardcond.report.seeds import seed_lines
from rewardcond.stats import MIN_PROMPTS
from rewardcond.tables import NO_TARGET

NO_JUDGE = (
    "No held-out judge in this run (`evaluate.judges` is empty): every reward and win rate here "
    "is the reward model's, the proxy the methods were conditioned on or optimised against, so "
    "over-optimisation cannot be measured."
)
METRIC_LABELS = {
    "achieved_reward": "achieved (reward-model) reward",
    "winrate_rm": "win rate against the reference under the reward model",
    "spearman_pooled": "calibration (pooled Spearman(target, achieved), in-range targets)",
}
HEADLINES = {
    "winrate_rm": "Highest win rate against the reference under the reward model",
    "spearman_pooled": "Best calibration (pooled Spearman(target, achieved), in-range targets)",
}


def judge_line(judge: HeldOutJudge) -> str:
    """The verdict's first bullet: which judge is the held-out side, and on what figure."""
    figure = (
        "its score"
        if judge.scores
        else "its win rate against the reference (an llm judge gives verdicts, not scores)"
    )
    return (
        f"Held-out judge: **{judge.name}** (kind {judge.kind}, `evaluate.main_judge`); the "
        f"judge-side figures below are {figure}, and its agreement with the human labels is in "
        "the Judges section."
    )


def metric_labels(judge: HeldOutJudge | None) -> tuple[dict[str, str], dict[str, str]]:
    """(label, headline title) per metric of the verdict, the held-out `judge`'s included, in
    the verdict's order: achieved reward, judge score, the two win rates, calibration."""
    labels = {"achieved_reward": METRIC_LABELS["achieved_reward"]}
    titles = {}
    if judge is not None and judge.scores:
        labels[judge.metric] = f"{judge.name} score (held-out judge)"
        titles[judge.metric] = f"Highest {judge.name} score (held-out judge)"
    labels["winrate_rm"], titles["winrate_rm"] = (
        METRIC_LABELS["winrate_rm"],
        HEADLINES["winrate_rm"],
    )
    if judge is not None:
        labels[judge.winrate] = f"win rate against the reference under {judge.name}"
        titles[judge.winrate] = f"Highest win rate against the reference under {judge.name}"
    labels["spearman_pooled"] = METRIC_LABELS["spearman_pooled"]
    titles["spearman_pooled"] = HEADLINES["spearman_pooled"]
    return labels, titles


def fmt(value: float, digits: int = 3) -> str:
    """`value` with `digits` decimals, or "n/a" when it is missing."""
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def _interval(low: float, high: float, level: float) -> str:
    return f"[{level:.0%} CI {fmt(low)}, {fmt(high)}]"


def method_label(method: str, target_name: str) -> str:
    """`method`, or `method @ target` for a figure at one target reward."""
    return method if target_name in (NO_TARGET, IN_RANGE) else f"{method} @ {target_name}"


def has_gold(tables: Mapping[str, pd.DataFrame]) -> bool:
    """Whether any method has a gold (ground-truth) reward: the synthetic world has one, real
    data none."""
    return bool(tables["summary"]["gold_reward_mean"].notna().any())


def verdict_lines(
    tables: Mapping[str, pd.DataFrame],
    level: float,
    main_method: str | None = None,
    judge: HeldOutJudge | None = None,
) -> list[str]:
    """The REPORT's verdict, one Markdown bullet per finding, computed from the tables. The
    held-out side is `judge` (`evaluate.main_judge`, named in the first bullet; its columns
    `judge_<name>_*`); without a judge one line says so and no judge figure is mentioned. The
    best calibration is crowned only when its pooled Spearman is above 0: a target reward that
    the achieved one ignores or falls with is no calibration. With replicates (a
    `seed_comparisons` table with two or more seeds, `report.replicates`), no single model is
    crowned and the main method's bullets are `seeds.seed_lines`: a difference is called only
    when it holds across seeds."""
    winrate, correlation, comparisons = (
        tables["winrate"],
        tables["correlation"],
        tables["comparisons"],
    )
    labels, titles = metric_labels(judge)
    headline = {
        metric: (winrate, metric, f"{metric}_ci_low", f"{metric}_ci_high")
        for metric in ("winrate_rm", *([judge.winrate] if judge else []))
    }
    if judge is not None and judge.scores:
        headline[judge.metric] = (winrate, *judge.interval)
    headline["spearman_pooled"] = (
        correlation,
        "spearman_pooled",
        "spearman_pooled_ci_low",
        "spearman_pooled_ci_high",
    )
    lines = [NO_JUDGE] if judge is None else [judge_line(judge)]
    across = tables.get("seed_comparisons")
    replicated = main_method is not None and across is not None and (across["n_seeds"] >= 2).any()
    # With replicates no trained model (one seed) is crowned: the best of several seeds' models
    # is a pick of the luckiest seed. Their one-seed rankings stay in tables/comparisons.csv.
    for metric, title in () if replicated else titles.items():
        table, column, low, high = headline[metric]
        usable = rankable(table, column)
        unranked = _unranked(table.drop(usable.index), column)
        if usable.empty:
            lines.append(
                f"No {labels[metric]} to rank: {unranked}."
                if unranked
                else f"No {labels[metric]}: no method has a value for it in this run."
            )
            continue
        best = usable.loc[usable[column].idxmax()]
        target = best.get("target_name", NO_TARGET)
        if metric == "spearman_pooled" and not best[column] > 0:
            # Asking for more reward gives no more (or less): nothing to crown, however it ranks.
            line = (
                f"No method is calibrated: the highest {labels[metric]} is "
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
            line += "; " + _grouped(against) + "."
        if unranked:
            line += f" Not ranked: {unranked}."
        lines.append(line)
    if replicated:
        lines.extend(seed_lines(across, labels, level))  # issue 19: calls that hold across seeds
    elif main_method is not None:
        for metric in labels:
            if metric == "spearman_pooled":
                continue
            rows = comparisons[
                (comparisons["metric"] == metric) & (comparisons["method"] == main_method)
            ]
            if rows.empty:
                continue
            lines.append(f"{main_method} on {labels[metric]}: {_grouped(rows)}.")
    lines.extend(overoptimisation_lines(correlation, level, judge))
    lines.extend(frontier_lines(tables, judge))
    return lines


def _difference(row: pd.Series) -> str:
    return f"{row['difference']:+.3f} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


def _grouped(rows: pd.DataFrame) -> str:
    """`comparisons` rows of one method, short: "beats a (+d [low, high]), ...; ties with c, d;
    loses to e (...)"; the paired bootstrap details are in `tables/comparisons.csv`."""
    groups = {"beats": [], "ties with": [], "loses to": []}
    for _, row in rows.iterrows():
        other = method_label(row["other"], row["other_target_name"])
        if not row["significant"]:
            groups["ties with"].append(other)
        else:
            outcome = "beats" if row["difference"] > 0 else "loses to"
            groups[outcome].append(f"{other} ({_difference(row)})")
    return "; ".join(f"{key} {', '.join(names)}" for key, names in groups.items() if names)


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


def overoptimisation_lines(
    correlation: pd.DataFrame, level: float, judge: HeldOutJudge | None = None
) -> list[str]:
    """A plain sentence for every conditioned method whose reward-model score rises with the
    target while the held-out `judge`'s figure falls (pooled Spearman over the in-range targets,
    `comparisons.judge_spearman` columns), both with intervals that exclude zero. Figures with
    a note (undefined, or from too few prompts: see `spearman_note`) are left out; nothing
    without a judge."""
    if judge is None:
        return []
    stem = judge_spearman(judge)
    lines, not_diverging = [], []
    ranked = (correlation["spearman_note"] == "") & (correlation[f"{stem}_note"] == "")
    for _, row in correlation[ranked].iterrows():
        if not (row["spearman_pooled_ci_low"] > 0 and row[f"{stem}_pooled_ci_high"] < 0):
            not_diverging.append(row["method"])
            continue
        proxy = _interval(row["spearman_pooled_ci_low"], row["spearman_pooled_ci_high"], level)
        judged = _interval(row[f"{stem}_pooled_ci_low"], row[f"{stem}_pooled_ci_high"], level)
        lines.append(
            f"**Over-optimisation in {row['method']}**: asking for a higher reward raises the "
            f"reward-model score (Spearman {fmt(row['spearman_pooled'])} {proxy}) while the "
            f"{judge.label} falls (Spearman {fmt(row[f'{stem}_pooled'])} {judged}). The "
            "policy is exploiting the proxy: this is over-optimisation."
        )
    if not_diverging:
        lines.append(
            f"Proxy and {judge.name} do not move in significantly opposite directions with the "
            "target for: " + ", ".join(not_diverging) + "."
        )
    return lines


def frontier_lines(
    tables: Mapping[str, pd.DataFrame], judge: HeldOutJudge | None = None
) -> list[str]:
    """The verdict on reward against KL from sft (tables `winrate`, `matched_kl`,
    `overoptimisation`; nothing when the tables have no KL): each method's KL at its headline
    target, the main method against `rloo` at matched KL (which is ahead, per metric, by the
    paired interval), and for every method where over-optimisation starts (its lowest-KL
    condition with the RM reward above sft's and the held-out `judge`'s figure below, both
    intervals excluding 0). Without a judge: no over-optimisation bullet (NO_JUDGE says why)."""
    if "matched_kl" not in tables:
        return []
    winrate, matched = tables["winrate"], tables["matched_kl"]
    kls = []
    for _, row in winrate[winrate["method"] != "sft"].iterrows():
        text = f"{method_label(row['method'], row['target_name'])} {_kl(row)}"
        if pd.notna(row["kl_sft_analytic"]):
            text += f" (bound {row['kl_sft_analytic']:.2f})"
        kls.append(text)
    lines = [
        "KL from sft at the headline target (nats per sequence, temperature-1 sampling; "
        f"`plots/frontier.png`): {'; '.join(kls)}."
    ]
    if matched.empty:
        lines.append(
            f"No matched-KL comparison with {RLHF_METHOD}: a method or a finite KL is missing."
        )
    else:
        lines.append(matched_kl_line(matched, judge))
    if judge is None:
        return lines
    difference, low, high = judge_difference_columns(judge)
    flags = tables["overoptimisation"]
    clean = []
    for method in flags["method"].unique():
        start = onset(flags, method)
        if start is None:
            clean.append(method)
            continue
        rm = (
            f"{start['rm_difference']:+.3f} [{fmt(start['rm_ci_low'])}, {fmt(start['rm_ci_high'])}]"
        )
        judged = f"{start[difference]:+.3f} [{fmt(start[low])}, {fmt(start[high])}]"
        lines.append(
            f"**{method} over-optimises** from {method_label(method, start['target_name'])} "
            f"(KL {_kl(start)}): RM {rm} above sft's, {judge.label} {judged} below."
        )
    if clean:
        lines.append(
            f"No condition with the RM reward above sft's and {judge.label} below (both "
            "intervals): " + ", ".join(clean) + "."
        )
    return lines


def _kl(row) -> str:
    kl = row["kl_sft"]
    return "n/a" if pd.isna(kl) else ("inf" if np.isinf(kl) else f"{kl:.2f}")


#: KLs within this factor of each other count as matched; beyond it the verdict says they are not.
KL_MATCH_FACTOR = 1.5


def matched_kl_line(matched: pd.DataFrame, judge: HeldOutJudge | None = None) -> str:
    """The verdict's matched-KL bullet from `tables/matched_kl`: the paired differences (the
    held-out `judge`'s figure, named by the judge, and the RM's), which method is ahead on each
    (by its interval), and a warning when even the closest target's KL is more than
    `KL_MATCH_FACTOR` times off rloo's (then the comparison is not at matched KL)."""
    first = matched.iloc[0]
    method, other = first["method"], first["other"]
    clauses, ahead = [], {}
    for _, row in matched.iterrows():
        if row["metric"] == "achieved_reward":
            name = "RM"
        elif judge is not None and row["metric"] == judge.metric:
            name = judge.label
        else:
            raise ValueError(
                f"matched_kl: metric {row['metric']!r} is neither achieved_reward nor the main "
                f"judge's ({judge.metric if judge else 'no judge configured'})"
            )
        clauses.append(f"{name} {_difference(row)}")
        leader = (method if row["difference"] > 0 else other) if row["significant"] else None
        ahead.setdefault(leader, []).append(name)
    verdicts = [
        f"{leader} is ahead on {' and '.join(names)}"
        if leader
        else f"level on {' and '.join(names)}"
        for leader, names in ahead.items()
    ]
    kl, other_kl = first["kl_sft"], first["other_kl_sft"]
    low, high = sorted([kl, other_kl])
    matched_note = ""
    if not (low > 0 and high <= KL_MATCH_FACTOR * low):
        matched_note = (
            f" Not matched: no target of {method} comes within {KL_MATCH_FACTOR}x of "
            f"{other}'s KL; this is {method}'s closest."
        )
    return (
        f"**{method} vs {other} at matched KL**: {method_label(method, first['target_name'])} "
        f"(KL {kl:.2f}) minus {method_label(other, first['other_target_name'])} "
        f"(KL {other_kl:.2f}): {', '.join(clauses)}; {'; '.join(verdicts)}.{matched_note}"
    )

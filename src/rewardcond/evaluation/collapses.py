"""Collapsed replicates (issue 19): a trained model whose summaries stop ending (EOS rate below
`evaluate.collapse.min_eos_rate`) or whose held-out judge figure falls below `sft`'s of the same
seed by more than `evaluate.collapse.judge_margin` (in the judge's unit), at its group's headline
target. Huang et al. (2024, *The N+ Implementation Details of RLHF with PPO*) saw 2 of 4 PPO
seeds collapse on TL;DR; counting collapses per method says how often a method fails.

Collapsed replicates are counted and named, never dropped: the means over seeds include them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.replicates import group_targets, replicate_index

#: The reference policy a replicate's judge figure is held against.
REFERENCE_GROUP = "sft"


@dataclass(frozen=True)
class CollapseRule:
    """When a replicate counts as collapsed (config `evaluate.collapse`): EOS rate (share of
    summaries that end with EOS within the length limit) below `min_eos_rate`, or the main
    judge's figure below sft's (same seed) by more than `judge_margin` in the judge's unit."""

    min_eos_rate: float = 0.5
    judge_margin: float = 0.25


def collapse_table(
    summary: pd.DataFrame,
    rule: CollapseRule,
    run_seed: int,
    judge: HeldOutJudge | None = None,
) -> pd.DataFrame:
    """One row per group (model name without its seed): method (the group), n_seeds,
    n_collapsed, collapsed_seeds (", "-joined), target_name (the group's headline target,
    `replicates.group_targets`) and why (per collapsed seed: "s<k>: <reason>", "; "-joined).

    `summary`: the summary table (`eos_rate`, and `judge.metric` with a judge). sft is held
    against nobody on the judge; a replicate of a group whose sft partner is missing (no sft
    model of its seed, and not a single sft model) is judged on EOS only, and `why` of a group
    with no collapse says which criteria applied when one was left out.
    """
    index = replicate_index(summary["method"].unique(), run_seed)
    chosen = group_targets(summary, index)
    at = summary.set_index(["method", "target_name"])
    reference = index[index["group"] == REFERENCE_GROUP].set_index("seed")["model"]
    records = []
    for group, members in index.groupby("group", sort=False):
        collapsed, reasons, unchecked = [], [], set()
        target = chosen[group]
        for _, member in members.sort_values("seed").iterrows():
            row = at.loc[(member["model"], target)]
            why = []
            if row["eos_rate"] < rule.min_eos_rate:
                why.append(f"EOS rate {row['eos_rate']:.2f} < {rule.min_eos_rate:g}")
            only = reference.iloc[0] if len(reference) == 1 else None
            partner = reference.get(member["seed"], only)
            if judge is not None and group != REFERENCE_GROUP and partner is not None:
                own = row[judge.metric]
                base = at.loc[(partner, chosen[REFERENCE_GROUP]), judge.metric]
                if base - own > rule.judge_margin:
                    why.append(
                        f"{judge.label} {own:.3f} below {partner}'s {base:.3f} by "
                        f"{base - own:.3f} > {rule.judge_margin:g}"
                    )
            elif group != REFERENCE_GROUP:
                unchecked.add("no held-out judge" if judge is None else "no sft of its seed")
            if why:
                collapsed.append(str(member["seed"]))
                reasons.append(f"s{member['seed']}: " + " and ".join(why))
        note = "; ".join(reasons)
        if not reasons and unchecked:
            note = f"EOS rate only ({', '.join(sorted(unchecked))})"
        records.append(
            {"method": group, "n_seeds": len(members), "n_collapsed": len(collapsed),
             "collapsed_seeds": ", ".join(collapsed), "target_name": target, "why": note}
        )  # fmt: skip
    return pd.DataFrame.from_records(
        records,
        columns=["method", "n_seeds", "n_collapsed", "collapsed_seeds", "target_name", "why"],
    )

"""The REPORT's compact tables: a few columns each, with intervals written out; the CSVs under
`tables/` hold every column."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from rewardcond.evaluation.frontier import judge_difference_columns, kl_label
from rewardcond.evaluation.judged import HeldOutJudge

NO_JUDGE_NOTE = """\
No held-out judge (`evaluate.judges` is empty): the matched-KL comparison is on the reward model,
the proxy, only, and `tables/overoptimisation.csv` holds the reward-model differences only, with no
over-optimisation flag."""

KL_NOTE = """\
KL from sft: KL(pi || pi_sft) in nats per sequence (summed over a summary's tokens and its EOS),
mean over prompts with its bootstrap interval (`rewardcond.kl`). It is the distance of the
method's *sampling* policy (temperature 1, `evaluate.kl_samples` samples per prompt, Monte Carlo
over the policy's own samples) from sft's, not of the greedy decoder that wrote the summaries
scored here; a Monte Carlo estimate can fall below 0 on few samples. `inf`: a sample holds a token
sft cannot emit (e.g. `tokens`' `<|good|>`), which makes the KL infinite. Best-of-N: `KL from sft`
is the estimate of Beirami et al. 2024 from sft's probability of each kept summary, `KL bound` the
analytic `log N - (N - 1)/N` (an upper bound). sft is the reference: 0."""


def with_ci(table: pd.DataFrame, column: str, prefix: str) -> pd.Series:
    return pd.Series(
        [
            "" if pd.isna(mean) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"
            for mean, low, high in zip(
                table[column], table[f"{prefix}_ci_low"], table[f"{prefix}_ci_high"], strict=True
            )
        ],
        index=table.index,
    )


def markdown(frame: pd.DataFrame, missing: str = "nan") -> str:
    """`frame` as a Markdown table; `missing` stands for a missing value."""
    if not len(frame):
        return "(empty)"
    return frame.to_markdown(index=False, floatfmt=".3f", missingval=missing)


def _kl_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The REPORT's KL columns of a table with `frontier.KL_COLUMNS`."""
    return pd.DataFrame(
        {
            "KL from sft (nats)": [kl_label(row) for _, row in table.iterrows()],
            "KL bound": table["kl_sft_analytic"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
        },
        index=table.index,
    )


def calibration_table(correlation: pd.DataFrame, gold: bool) -> pd.DataFrame:
    """A few columns of the correlation table for the REPORT (all of them in the CSV); without
    gold no gold column."""
    compact = correlation[["method"]].copy()
    kinds = (("RM", "spearman"), ("gold", "spearman_gold")) if gold else (("RM", "spearman"),)
    for label, prefix in kinds:
        compact[f"Spearman(target, {label}) [CI]"] = [
            "nan" if pd.isna(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
            for v, lo, hi in zip(
                correlation[f"{prefix}_pooled"],
                correlation[f"{prefix}_pooled_ci_low"],
                correlation[f"{prefix}_pooled_ci_high"],
                strict=True,
            )
        ]
        compact[f"{label} per prompt"] = correlation[f"{prefix}_per_prompt_mean"]
    compact["MAE"] = correlation["calibration_mae"]
    notes = correlation["spearman_note"].fillna("")
    if gold:
        notes = notes + "; " + correlation["spearman_gold_note"].fillna("")
    compact["note"] = notes.str.strip("; ")
    return compact


def summary_table(summary: pd.DataFrame, kl: bool) -> pd.DataFrame:
    compact = summary[["method", "target_name", "target_reward", "n"]].copy()
    compact.insert(3, "in range", summary["in_range"].map({True: "yes", False: "no"}).fillna(""))
    compact["achieved reward"] = with_ci(summary, "achieved_reward_mean", "achieved_reward")
    compact["gold reward"] = with_ci(summary, "gold_reward_mean", "gold_reward")
    if kl:
        compact["KL from sft (nats)"] = _kl_columns(summary)["KL from sft (nats)"]
    compact[["rougeL", "length", "eos", "distinct2"]] = summary[
        ["rougeL", "length_mean", "eos_rate", "distinct2"]
    ]
    compact["win rate (RM)"] = summary["winrate_rm"]
    compact["win rate (gold)"] = summary["winrate_gold"]
    return compact


def wins_table(winrate: pd.DataFrame, kl: bool) -> pd.DataFrame:
    wins = winrate[["method", "target_name", "n"]].copy()
    wins["win rate (RM)"] = with_ci(winrate, "winrate_rm", "winrate_rm")
    wins["win rate (gold)"] = with_ci(winrate, "winrate_gold", "winrate_gold")
    if kl:
        wins = wins.join(_kl_columns(winrate))
    # Blank, not `nan`, where a method trains nothing (best-of-N).
    wins["train s"] = winrate["train_seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    wins[["tokens/prompt", "N"]] = winrate[["generated_tokens_per_prompt", "n_candidates"]]
    return wins


def _ci(value: float, low: float, high: float) -> str:
    return "" if pd.isna(value) else f"{value:+.3f} [{low:.3f}, {high:.3f}]"


def frontier_section(tables: Mapping[str, pd.DataFrame], judge: HeldOutJudge | None) -> str:
    """The REPORT's section on reward against KL: the matched-KL comparison and the conditions
    flagged as over-optimised, a few columns each (every column in `tables/`); the held-out side
    is `judge` (`evaluate.main_judge`), named in the headers; without a judge the proxy only, and
    the section says so."""
    if "matched_kl" not in tables:
        return ""
    matched = tables["matched_kl"]
    compact = pd.DataFrame(
        {
            "metric": matched["metric"],
            "method (KL)": [f"{m} @ {t} ({k:.3f})" for m, t, k in
                            zip(matched["method"], matched["target_name"], matched["kl_sft"],
                                strict=True)],
            "other (KL)": [f"{m} ({k:.3f})" for m, k in
                           zip(matched["other"], matched["other_kl_sft"], strict=True)],
            "method - other [CI]": [_ci(*v) for v in
                                    matched[["difference", "ci_low", "ci_high"]].to_numpy()],
            "significant": matched["significant"],
        }
    )  # fmt: skip
    section = f"""
## Reward against KL from sft
Plot: `plots/frontier.png` (reward against sqrt(KL)).

Matched KL (`tables/matched_kl.csv`): the main method at its target whose KL is closest to
rloo's, paired bootstrap over the prompts both share.

{markdown(compact)}
"""
    if judge is None:
        return section + f"\n{NO_JUDGE_NOTE}\n"
    flags = tables["overoptimisation"]
    flags = flags[flags["overoptimised"].fillna(False)]
    columns = {"RM - sft [CI]": ["rm_difference", "rm_ci_low", "rm_ci_high"],
               f"{judge.label} - sft [CI]": judge_difference_columns(judge)}  # fmt: skip
    flagged = pd.DataFrame({"method": [
        f"{m} @ {t}" if t != "none" else m
        for m, t in zip(flags["method"], flags["target_name"], strict=True)
    ]})  # fmt: skip
    flagged["KL from sft"] = flags["kl_sft"].to_numpy()
    for label, names in columns.items():
        flagged[label] = [_ci(*v) for v in flags[names].to_numpy()]
    return (
        section
        + f"""
Over-optimised conditions: reward-model reward above sft's while the {judge.label} (held-out
judge `{judge.name}`, `evaluate.main_judge`) is below sft's, both paired intervals excluding 0
(every method x condition in `tables/overoptimisation.csv`):

{markdown(flagged)}
"""
    )


def judges_section(agreement: pd.DataFrame | None, winrate: pd.DataFrame) -> str:
    """The REPORT's "Judges" section: each judge's agreement with the human labels on valid2
    (`tables/judges.csv`, with its CI) and each judge's win rate against the reference per
    method at its headline target (`winrate`'s `judge_<name>_winrate` columns, with CIs).
    Empty without judges."""
    names = [
        column.removeprefix("judge_").removesuffix("_winrate")
        for column in winrate.columns
        if column.startswith("judge_") and column.endswith("_winrate")
    ]
    if agreement is None and not names:
        return ""
    parts = ["## Judges", ""]
    if agreement is not None:
        compact = agreement[["judge", "kind", "model", "n"]].copy()
        renamed = {"ci_low": "agreement_ci_low", "ci_high": "agreement_ci_high"}
        compact["agreement with human labels [CI]"] = with_ci(
            agreement.rename(columns=renamed), "agreement", "agreement"
        )
        parts += [
            "Agreement with the human labels on the valid2 comparisons (`tables/judges.csv`; "
            "`proxy` is the run's own reward model):",
            "",
            markdown(compact),
            "",
        ]
    if names:
        wins = winrate[["method", "target_name"]].copy()
        for name in names:
            column = f"judge_{name}_winrate"
            wins[f"win rate ({name}) [CI]"] = with_ci(winrate, column, column)
        parts += [
            "Win rate against the reference summary by each judge, per method at its headline "
            "target (`judge_<name>_*` columns of `tables/winrate.csv` and `tables/summary.csv`):",
            "",
            markdown(wins, missing=""),
            "",
        ]
    return "\n".join(parts) + "\n"

"""Rule `publish`'s outputs across training seeds and the seed post's questions (issue 19):
`tables/replicates`, `seeds`, `seed_comparisons`, `collapses`, `extrapolation`, `efficiency`
and `plots/extrapolation.png`, `plots/efficiency.png`, written on every run (fixed outputs);
the REPORT gets their sections, and the verdict the across-seed bullets, only when the run has
replicates (a group with two or more seeds) or models on part of their pool, so that a run of
one seed per method keeps its REPORT word for word."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from rewardcond.artifacts import write_table
from rewardcond.evaluation.collapses import CollapseRule, collapse_table
from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.questions import (
    efficiency_needs,
    efficiency_table,
    extrapolation_needs,
    extrapolation_table,
    training_maximum,
    training_rows,
)
from rewardcond.evaluation.replicates import (
    has_replicates,
    replicate_comparisons,
    replicate_index,
    replicate_tables,
)
from rewardcond.evaluation.targets import Target
from rewardcond.report.seed_plots import plot_efficiency, plot_extrapolation, plot_not_configured
from rewardcond.report.seeds import (
    collapse_lines,
    efficiency_pairs,
    headline_table,
    seed_post_section,
)
from rewardcond.stats import BootstrapSettings

#: Tables written by `publish_replicates`, `tables/<name>.csv` (and `.md` but for `seeds`).
SEED_TABLES = (
    "replicates", "seeds", "seed_comparisons", "collapses", "extrapolation", "efficiency"
)  # fmt: skip
SEED_PLOTS = ("extrapolation", "efficiency")
TITLES = {
    "replicates": "Mean over training seeds per model x condition x metric, hierarchical "
    "bootstrap intervals (seeds, then prompts within each seed)",
    "seeds": None,
    "seed_comparisons": "The main method against every other method, paired by seed and prompt",
    "collapses": "Collapsed replicates per method (they stay in the means over seeds)",
    "extrapolation": "Achieved vs requested reward, beyond-max targets included",
    "efficiency": "The main judge's figure against the training rows (percent of the pool)",
}


def seed_outputs() -> list[str]:
    """The files `publish_replicates` writes, relative to the run's results folder."""
    tables = [f"tables/{name}.{ext}" for name in SEED_TABLES for ext in ("csv", "md")]
    return [
        *(path for path in tables if path != "tables/seeds.md"),
        *(f"plots/{name}.png" for name in SEED_PLOTS),
    ]


def rule_text(rule: CollapseRule, judge: HeldOutJudge | None) -> str:
    """The collapse rule in words, for the REPORT."""
    text = f"EOS rate < {rule.min_eos_rate:g}"
    if judge is not None:
        text += f", or {judge.label} below sft's (same seed) by more than {rule.judge_margin:g}"
    return text + ", at the method's headline target"


def publish_replicates(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    targets: Sequence[Target],
    settings: BootstrapSettings,
    results: str | os.PathLike,
    *,
    kl: pd.DataFrame | None = None,
    main_method: str | None = None,
    judge: HeldOutJudge | None = None,
    rule: CollapseRule | None = None,
    trainset_reports: Mapping[str, str | os.PathLike] | None = None,
    correlation: pd.DataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], str, bool]:
    """Write `SEED_TABLES` under `results/tables` and `SEED_PLOTS` under `results/plots`.

    `frame`: `combine`'s frame with `attach_judges`' columns; `summary`: the summary table;
    `kl`: the `kl` rules' per-prompt rows; `trainset_reports`: {model:
    `trainsets/<model>.json`} (its `rows`: the efficiency figure's x axis); `correlation`: the
    correlation table (each model's own Spearman figures, `replicates.replicate_tables`).
    Returns (tables, REPORT section, shown): `shown` is whether the run has replicates or models
    on part of their pool, i.e. whether the REPORT and the verdict use them; the section is ""
    otherwise."""
    results, rule = Path(results), rule or CollapseRule()
    replicates, seeds = replicate_tables(frame, settings, judge, kl, correlation)
    index = replicate_index(frame["method"].unique(), settings.seed)
    tables = {
        "replicates": replicates,
        "seeds": seeds,
        "seed_comparisons": replicate_comparisons(
            frame,
            summary,
            settings,
            main_method,
            judge,
            extra_pairs=efficiency_pairs(index["pool_percent"]),
        ),  # fmt: skip
        "collapses": collapse_table(summary, rule, settings.seed, judge),
        "extrapolation": extrapolation_table(replicates, targets, judge),
        "efficiency": efficiency_table(
            replicates, judge, _group_rows(training_rows(trainset_reports or {}), index)
        ),
    }
    for name in SEED_TABLES:
        markdown = None if TITLES[name] is None else results / "tables" / f"{name}.md"
        write_table(tables[name], results / "tables" / f"{name}.csv", markdown, title=TITLES[name])
    why_not = {
        "extrapolation": extrapolation_needs(replicates, targets),
        "efficiency": efficiency_needs(replicates) or ("" if judge else "no held-out judge"),
    }
    plots = results / "plots"
    if tables["extrapolation"].empty:
        plot_not_configured(plots / "extrapolation.png", "Extrapolation", why_not["extrapolation"])
    else:
        plot_extrapolation(
            tables["extrapolation"], training_maximum(targets), plots / "extrapolation.png", judge
        )
    if tables["efficiency"].empty:
        plot_not_configured(plots / "efficiency.png", "Efficiency", why_not["efficiency"])
    else:
        plot_efficiency(tables["efficiency"], plots / "efficiency.png", judge)
    shown = has_replicates(index) or bool((index["pool_percent"] < 100).any())
    if not shown:
        return tables, "", False
    section = "## Replicates and collapses\n" + "\n".join(
        f"- {line}"
        for line in [
            f"Training seeds per method: {_seed_counts(index)}; every figure across seeds is "
            "the mean over seeds with a hierarchical bootstrap interval (seeds, then prompts "
            "within each seed; Davison and Hinkley 1997, §3.8) in `tables/replicates.csv`, each "
            "seed's own in `tables/seeds.csv`.",
            *collapse_lines(tables["collapses"], rule_text(rule, judge)),
        ]
    )
    table = headline_table(replicates, tables["collapses"], judge)
    section += "\n\nAt each method's headline target (means over seeds [hierarchical "
    section += f"{settings.level:.0%} CI]):\n\n{table.to_markdown(index=False)}"
    section += "\n\n" + seed_post_section(
        tables["extrapolation"], tables["efficiency"], judge, why_not, tables["seed_comparisons"]
    )
    return tables, section, True


def _group_rows(rows: Mapping[str, int], index: pd.DataFrame) -> dict[str, int]:
    """{group: rows} from {model: rows}: a group's seeds train on the same rows; the first given."""
    by_group = {}
    for _, row in index.iterrows():
        if row["model"] in rows:
            by_group.setdefault(row["group"], rows[row["model"]])
    return by_group


def _seed_counts(index: pd.DataFrame) -> str:
    counts = index.groupby("group", sort=False)["seed"].agg(lambda s: ", ".join(map(str, s)))
    return "; ".join(f"{group} ({seeds})" for group, seeds in counts.items())

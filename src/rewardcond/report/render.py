"""REPORT.md and the rule `publish`: the tables (CSV + Markdown), the plots and the report."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from rewardcond.artifacts import write_table, write_text
from rewardcond.evaluation.comparisons import compare_methods, correlations
from rewardcond.evaluation.frontier import attach_kl, kl_label, matched_kl, overoptimisation
from rewardcond.evaluation.summary import combine, summarize, win_rates
from rewardcond.evaluation.targets import Target, load_targets
from rewardcond.kl.summary import summarize_kl
from rewardcond.report.plots import (
    plot_calibration,
    plot_frontier,
    plot_overoptimisation,
    plot_reward_distribution,
    plot_winrate,
)
from rewardcond.report.setup import (
    data_sizes,
    hardware,
    models_line,
    stage_times,
    training_seconds,
)
from rewardcond.report.verdict import fmt, has_gold, verdict_lines
from rewardcond.stats import MIN_PROMPTS, BootstrapSettings

log = logging.getLogger(__name__)

TABLES = ("summary", "correlation", "winrate", "comparisons", "matched_kl", "overoptimisation")
#: The figures under `plots/`, `<name>.png` each.
PLOTS = ("calibration", "reward_distribution", "overoptimisation", "winrate", "frontier")
KL_NOTE = """\
KL from sft: KL(pi || pi_sft) in nats per sequence (summed over a summary's tokens and its EOS),
mean over prompts with its bootstrap interval (`rewardcond.kl`). It is the distance of the
method's *sampling* policy (temperature 1, `evaluate.kl_samples` samples per prompt, Monte Carlo
over the policy's own samples) from sft's, not of the greedy decoder that wrote the summaries
scored here; a Monte Carlo estimate can fall below 0 on few samples. `inf`: a sample holds a token
sft cannot emit (e.g. `tokens`' `<|good|>`), which makes the KL infinite. Best-of-N: `KL` is the
estimate of Beirami et al. 2024 from sft's probability of each kept summary, `KL bound` the
analytic `log N - (N - 1)/N` (an upper bound). sft is the reference: 0."""
ANCHORS = """\
Figures from other setups, for orientation only; none of them was measured on this run's data,
models or reward model.

- Predecessor library (conditionme): Pearson r = 0.45 between uniformly drawn targets and the
  achieved reward, IMDB sentiment, gpt2-large. Compare with `spearman_pooled` in the correlation
  table (a rank correlation on TL;DR here, so the two are neighbours, not equals).
- PPO on TL;DR, other setups (no figures quoted here; see the sources):
  Stiennon et al. 2020, *Learning to summarize from human feedback* (OpenAI; 1.3B and 6.7B GPT-3
  style policies, preference over the reference summaries judged by human labelers);
  CarperAI trlx, `examples/summarize_rlhf` (GPT-J, PPO against a trained reward model);
  Huang et al. 2024, *The N+ Implementation Details of RLHF with PPO: A Case Study on TL;DR
  Summarization* (Pythia 1B to 6.9B, win rates against the reference judged by GPT-3.5).
  Their win rates are judged by humans or an LLM; ours by this run's reward model{gold}.
"""


# --- tables ---------------------------------------------------------------------------------


def build_tables(
    frame: pd.DataFrame,
    targets: Sequence[Target],
    settings: BootstrapSettings,
    *,
    kl: pd.DataFrame | None = None,
    train_seconds: Mapping[str, float] | None = None,
    main_method: str | None = None,
) -> dict[str, pd.DataFrame]:
    """summary, correlation, winrate and comparisons tables from `combine`'s frame; with `kl`
    (`rewardcond.kl.summary.summarize_kl`'s frame, one row per method and condition) also the
    KL columns of summary and winrate (`frontier.attach_kl`), `matched_kl` (`main_method` vs
    `rloo` at matched KL) and `overoptimisation` (every method x condition against sft)."""
    summary = summarize(frame, targets, settings)
    if kl is not None:
        summary = attach_kl(summary, kl)
    correlation = correlations(frame, settings)
    tables = {
        "summary": summary,
        "correlation": correlation,
        "winrate": win_rates(summary, dict(train_seconds or {})),
        "comparisons": compare_methods(frame, summary, correlation, settings, main_method),
    }
    if kl is not None:
        tables["matched_kl"] = matched_kl(frame, summary, settings, main_method)
        tables["overoptimisation"] = overoptimisation(frame, summary, settings)
    return tables


def _with_ci(table: pd.DataFrame, column: str, prefix: str) -> pd.Series:
    return pd.Series(
        [
            "" if pd.isna(mean) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"
            for mean, low, high in zip(
                table[column], table[f"{prefix}_ci_low"], table[f"{prefix}_ci_high"], strict=True
            )
        ],
        index=table.index,
    )


def _markdown(frame: pd.DataFrame, missing: str = "nan") -> str:
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


def _calibration(correlation: pd.DataFrame, gold: bool) -> pd.DataFrame:
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


def _summary_table(summary: pd.DataFrame, kl: bool) -> pd.DataFrame:
    compact = summary[["method", "target_name", "target_reward", "n"]].copy()
    compact.insert(3, "in range", summary["in_range"].map({True: "yes", False: "no"}).fillna(""))
    compact["achieved reward"] = _with_ci(summary, "achieved_reward_mean", "achieved_reward")
    compact["gold reward"] = _with_ci(summary, "gold_reward_mean", "gold_reward")
    if kl:
        compact["KL from sft (nats)"] = _kl_columns(summary)["KL from sft (nats)"]
    compact[["rougeL", "length", "eos", "distinct2"]] = summary[
        ["rougeL", "length_mean", "eos_rate", "distinct2"]
    ]
    compact["win rate (RM)"] = summary["winrate_rm"]
    compact["win rate (gold)"] = summary["winrate_gold"]
    return compact


def _wins_table(winrate: pd.DataFrame, kl: bool) -> pd.DataFrame:
    wins = winrate[["method", "target_name", "n"]].copy()
    wins["win rate (RM)"] = _with_ci(winrate, "winrate_rm", "winrate_rm")
    wins["win rate (gold)"] = _with_ci(winrate, "winrate_gold", "winrate_gold")
    if kl:
        wins = wins.join(_kl_columns(winrate))
    # Blank, not `nan`, where a method trains nothing (best-of-N).
    wins["train s"] = winrate["train_seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    wins[["tokens/prompt", "N"]] = winrate[["generated_tokens_per_prompt", "n_candidates"]]
    return wins


def _frontier_section(tables: Mapping[str, pd.DataFrame], gold: bool) -> str:
    """The REPORT's section on reward against KL: the matched-KL comparison and the conditions
    flagged as over-optimised (both tables in full under `tables/`); without gold no gold row."""
    if "matched_kl" not in tables:
        return ""
    matched = tables["matched_kl"]
    if not gold:
        matched = matched[matched["metric"] != "gold_reward"]
        return f"""
## Reward against KL from sft
Plot: `plots/frontier.png` (reward against sqrt(KL)).

Matched KL (`tables/matched_kl.csv`; difference = method minus other, paired bootstrap):

{_markdown(matched)}
"""
    flagged = tables["overoptimisation"]
    flagged = flagged[flagged["overoptimised"].fillna(False)]
    columns = ["method", "target_name", "kl_sft", "rm_difference", "rm_ci_low", "rm_ci_high"]
    columns += ["gold_difference", "gold_ci_low", "gold_ci_high"]
    return f"""
## Reward against KL from sft
Plot: `plots/frontier.png` (reward against sqrt(KL)).

Matched KL (`tables/matched_kl.csv`; difference = method minus other, paired bootstrap):

{_markdown(matched)}

Over-optimised conditions: reward-model reward above sft's while gold below sft's, both paired
intervals excluding 0 (every method x condition in `tables/overoptimisation.csv`):

{_markdown(flagged[columns])}
"""


def render_report(
    tables: Mapping[str, pd.DataFrame],
    *,
    setup: Mapping,
    sizes: pd.DataFrame,
    times: pd.DataFrame,
    references: pd.DataFrame,
    level: float,
    main_method: str | None,
    machine: str,
) -> str:
    """REPORT.md: setup, verdict, tables (compact, with CIs), anchors and the resolved config."""
    summary, winrate = tables["summary"], tables["winrate"]
    kl = "kl_sft" in summary.columns
    compact, wins = _summary_table(summary, kl), _wins_table(winrate, kl)
    per_rule = times.groupby("rule", sort=False)["seconds"].agg(["count", "sum", "max"])
    per_rule = per_rule.reset_index().rename(
        columns={"count": "jobs", "sum": "seconds (total)", "max": "seconds (slowest job)"}
    )
    verdict = "\n".join(f"- {line}" for line in verdict_lines(tables, level, main_method))
    gold = has_gold(tables)
    calibration = _calibration(tables["correlation"], gold)
    if not gold:  # real data: no empty gold columns
        compact = compact.drop(columns=["gold reward", "win rate (gold)"])
        wins = wins.drop(columns=["win rate (gold)"])
    gold_mean = references["gold"].mean()
    reference_line = (
        f"Reference summaries: mean reward-model score {fmt(references['reward'].mean())}"
    )
    reference_line += "" if pd.isna(gold_mean) else f", mean gold reward {fmt(gold_mean)}"
    data = setup.get("data", {}) if isinstance(setup.get("data"), Mapping) else {}
    kl_line = f"\n{KL_NOTE}\n" if kl else ""
    return f"""# Report: run `{setup.get("run", "?")}`

Generated by `rewardcond.report.render.publish` from the tables in `tables/`; do not edit by hand.

## Setup
- Data source: `{data.get("source", "?")}`; seed: {setup.get("seed", "?")}; device setting:
  `{setup.get("device", "?")}`; methods: {", ".join(summary["method"].unique())}.
- Models: {models_line(setup)}.
- Hardware (machine that published): {machine}.
- Intervals: {level:.0%} percentile bootstrap over prompts; differences by paired bootstrap over
  the prompts both methods share; significant when the interval excludes 0.
- A method's headline target is its in-range target with the highest mean reward-model score
  (chosen on the proxy{", never on gold" if gold else ""}); baselines have none.
- The verdict ranks a figure only when it rests on at least {MIN_PROMPTS} prompts (for a Spearman,
  prompts on which the score varies with the target). A Spearman with no such prompt (the same
  summary at every target) is undefined: NaN, with the reason in the `note` columns.

### Data sizes
{_markdown(sizes)}

### Time per stage (Snakemake benchmark files)
{_markdown(per_rule)}

## Verdict
{verdict}

## Win rates against the reference summary (headline target per method)
{reference_line}.
{kl_line}
{_markdown(wins, missing="")}
{_frontier_section(tables, gold)}
## Calibration (in-range targets)
{_markdown(calibration)}

## Summary (method x target)
{_markdown(compact)}

Full tables with every column: {", ".join(f"`tables/{name}.csv`" for name in tables)}.
Plots: `plots/`.

## Anchors (other setups)
{ANCHORS.format(gold=", in the synthetic world also by the gold function" if gold else "")}
## Resolved configuration
```yaml
{yaml.safe_dump(dict(setup), sort_keys=False).rstrip()}
```

## Jobs
{_markdown(times)}
"""


def read_kl(paths: str | os.PathLike | Sequence[str | os.PathLike], settings: BootstrapSettings):
    """The `kl` rules' files (`kl/<method>.parquet`) summarised per method and condition
    (`rewardcond.kl.summary.summarize_kl`, at the run's bootstrap settings)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    table = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    return summarize_kl(
        table, n_resamples=settings.n_resamples, level=settings.level, seed=settings.seed
    )


def publish(
    *,
    evaluated: str | os.PathLike | Sequence[str | os.PathLike],
    references: str | os.PathLike,
    targets: str | os.PathLike,
    kl: str | os.PathLike | Sequence[str | os.PathLike],
    results: str | os.PathLike,
    benchmarks: str | os.PathLike = "benchmarks",
    data_files: Mapping[str, str | os.PathLike] | None = None,
    setup: Mapping | None = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    main_method: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Rule `publish`: write `tables/`, `plots/` and `REPORT.md` under `results`.

    `kl`: every method's `kl/<method>.parquet` (rules `kl`, `kl_best_of_n`).

    Raises:
        ValueError: naming `evaluate.main_method` when it is not among the evaluated methods;
            naming the (method, target) pairs of the evaluation that have no KL rows.
    """
    results = Path(results)
    if isinstance(evaluated, (str, os.PathLike)):  # Snakemake hands over one file as a string
        evaluated = [evaluated]
    targets_list = load_targets(targets)
    evaluated_frames = [pd.read_parquet(path) for path in evaluated]
    reference_frame = pd.read_parquet(references)
    frame = combine(evaluated_frames, reference_frame, targets_list)
    methods = list(frame["method"].unique())
    if main_method is not None and main_method not in methods:
        raise ValueError(f"evaluate.main_method {main_method!r} is not among methods {methods}")
    settings = BootstrapSettings(n_resamples, level, seed)
    tables = build_tables(
        frame,
        targets_list,
        settings,
        kl=read_kl(kl, settings),
        train_seconds=training_seconds(benchmarks, methods),
        main_method=main_method,
    )
    titles = {
        "summary": "Summary: one row per method x target",
        "correlation": "Spearman(target, reward) over in-range targets, per conditioned method",
        "winrate": "Win rate against the reference summary, per method at its headline target",
        "comparisons": "Paired bootstrap differences behind the verdict",
        "matched_kl": "The main method against rloo at matched KL from sft",
        "overoptimisation": "Every method x condition against sft: RM and gold differences",
    }
    for name in TABLES:
        write_table(
            tables[name],
            results / "tables" / f"{name}.csv",
            results / "tables" / f"{name}.md",
            title=titles[name],
        )
    plots = {name: results / "plots" / f"{name}.png" for name in PLOTS}
    plot_calibration(tables["summary"], reference_frame["reward"].mean(), plots["calibration"])
    plot_reward_distribution(frame, targets_list, plots["reward_distribution"])
    plot_overoptimisation(tables["summary"], frame, reference_frame, plots["overoptimisation"])
    plot_winrate(tables["winrate"], plots["winrate"])
    plot_frontier(tables["summary"], plots["frontier"])
    report = render_report(
        tables,
        setup=setup or {},
        sizes=data_sizes(data_files or {}),
        times=stage_times(benchmarks),
        references=reference_frame,
        level=level,
        main_method=main_method,
        machine=hardware(),
    )
    write_text(results / "REPORT.md", report)
    log.info("published %s", results)
    return tables

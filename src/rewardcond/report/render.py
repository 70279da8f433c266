"""REPORT.md and the rule `publish`: the tables (CSV + Markdown), the plots and the report."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from rewardcond.artifacts import write_table, write_text
from rewardcond.evaluation.collapses import CollapseRule
from rewardcond.evaluation.comparisons import compare_methods, correlations
from rewardcond.evaluation.frontier import attach_kl, matched_kl, overoptimisation
from rewardcond.evaluation.judged import HeldOutJudge, attach_judges, held_out_judge
from rewardcond.evaluation.summary import combine, summarize, win_rates
from rewardcond.evaluation.targets import Target, load_targets
from rewardcond.judges import judge_column
from rewardcond.kl.summary import summarize_kl
from rewardcond.report.plots import (
    plot_calibration,
    plot_frontier,
    plot_overoptimisation,
    plot_reward_distribution,
    plot_winrate,
)
from rewardcond.report.replicates import publish_replicates
from rewardcond.report.sections import (
    KL_NOTE,
    calibration_table,
    frontier_section,
    judges_section,
    markdown,
    summary_table,
    wins_table,
)
from rewardcond.report.setup import (
    data_sizes,
    hardware,
    models_line,
    online_costs,
    stage_times,
    training_seconds,
)
from rewardcond.report.verdict import fmt, has_gold, verdict_lines
from rewardcond.stats import MIN_PROMPTS, BootstrapSettings

log = logging.getLogger(__name__)

TABLES = ("summary", "correlation", "winrate", "comparisons", "matched_kl", "overoptimisation")
#: The figures under `plots/`, `<name>.png` each.
PLOTS = ("calibration", "reward_distribution", "overoptimisation", "winrate", "frontier")
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
    judges: Mapping[str, str] | None = None,
    main_judge: str | None = None,
    online_costs: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, pd.DataFrame]:
    """summary, correlation, winrate and comparisons tables from `combine`'s frame (with
    `judges`, {name: kind}, `attach_judges`' frame: each judge's columns in summary and
    winrate); with `kl`
    (`rewardcond.kl.summary.summarize_kl`'s frame, one row per method and condition) also the
    KL columns of summary and winrate (`frontier.attach_kl`), `matched_kl` (`main_method` vs
    `rloo` at matched KL) and `overoptimisation` (every method x condition against sft).

    The held-out side of correlation, comparisons, matched_kl and overoptimisation is the judge
    `main_judge` (`evaluate.main_judge`, `judged.held_out_judge`): its `judge_<name>_*` figures;
    without judges the proxy's figures only. Raises ValueError naming `evaluate.main_judge` when
    it is not one of `judges`."""
    judge = held_out_judge(judges, main_judge)
    summary = summarize(frame, targets, settings, judges)
    if kl is not None:
        summary = attach_kl(summary, kl)
    correlation = correlations(frame, settings, judge)
    tables = {
        "summary": summary,
        "correlation": correlation,
        "winrate": win_rates(summary, dict(train_seconds or {}), online_costs),
        "comparisons": compare_methods(frame, summary, correlation, settings, main_method, judge),
    }
    if kl is not None:
        tables["matched_kl"] = matched_kl(frame, summary, settings, main_method, judge=judge)
        tables["overoptimisation"] = overoptimisation(frame, summary, settings, judge)
    return tables


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
    judges: pd.DataFrame | None = None,
    judge: HeldOutJudge | None = None,
    seed_section: str = "",
) -> str:
    """REPORT.md: setup, verdict, tables (compact, with CIs), the judges (`judges`: the
    `tables/judges.csv` frame, or None), anchors and the resolved config. `judge`: the held-out
    judge of the verdict and the KL section (`evaluate.main_judge`), None without judges;
    `seed_section`: replicates and the seed post's questions (`report.replicates`), after the
    verdict."""
    summary, winrate = tables["summary"], tables["winrate"]
    kl = "kl_sft" in summary.columns
    compact, wins = summary_table(summary, kl), wins_table(winrate, kl)
    per_rule = times.groupby("rule", sort=False)["seconds"].agg(["count", "sum", "max"])
    per_rule = per_rule.reset_index().rename(
        columns={"count": "jobs", "sum": "seconds (total)", "max": "seconds (slowest job)"}
    )
    verdict = "\n".join(f"- {line}" for line in verdict_lines(tables, level, main_method, judge))
    gold = has_gold(tables)
    calibration = calibration_table(tables["correlation"], gold)
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
{markdown(sizes)}

### Time per stage (Snakemake benchmark files)
{markdown(per_rule)}

## Verdict
{verdict}
{seed_section and chr(10) + seed_section}
## Win rates against the reference summary (headline target per method)
{reference_line}.
{kl_line}
{markdown(wins, missing="")}
{frontier_section(tables, judge)}
{judges_section(judges, winrate)}## Calibration (in-range targets)
{markdown(calibration)}

## Summary (method x target)
{markdown(compact)}

Full tables with every column: {", ".join(f"`tables/{name}.csv`" for name in tables)}.
Plots: `plots/`.

## Anchors (other setups)
{ANCHORS.format(gold=", in the synthetic world also by the gold function" if gold else "")}
## Resolved configuration
```yaml
{yaml.safe_dump(dict(setup), sort_keys=False).rstrip()}
```

## Jobs
{markdown(times)}
"""


def read_kl(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The `kl` rules' files (`kl/<method>.parquet`) in one frame of per-prompt rows."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


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
    judges: Mapping[str, str] | None = None,
    main_judge: str | None = None,
    judged: str | os.PathLike | Sequence[str | os.PathLike] = (),
    judged_references: str | os.PathLike | None = None,
    judges_table: str | os.PathLike | None = None,
    round_reports: Sequence[str | os.PathLike] = (),
    policy_samples: Mapping[str, int] | None = None,
    collapse: CollapseRule | None = None,
    trainset_reports: Mapping[str, str | os.PathLike] | None = None,
) -> dict[str, pd.DataFrame]:
    """Rule `publish`: write `tables/`, `plots/` and `REPORT.md` under `results`.

    `kl`: every method's `kl/<method>.parquet` (rules `kl`, `kl_best_of_n`). `judges`
    ({name: kind}, config `evaluate.judges`): when non-empty, `judged` (every method's
    `judged/<method>.parquet`), `judged_references` (`judged/references.parquet`) and
    `judges_table` (`tables/judges.csv`) are read, and each judge gets its columns in summary
    and winrate (`rewardcond.evaluation.judged`) and a "Judges" section in REPORT.md, and
    `main_judge` (config `evaluate.main_judge`) is the held-out side of the verdict, the
    comparisons, matched-KL and over-optimisation tables and the `overoptimisation` and
    `frontier` plots; without judges they say that only the proxy judges.
    `round_reports` (the online rounds' `trainsets/<method>-r<r>.json`, issue 18): when given,
    winrate gets the columns `round`, `online_samples` and `online_sampled_tokens`
    (`setup.online_costs`, with `policy_samples` {method: summaries sampled in training}, e.g.
    rloo's); a run without rounds has the tables it had. Across training seeds
    (`report.replicates.publish_replicates`, issue 19): the replicate, collapse (`collapse`,
    config `evaluate.collapse`) and seed-post tables and plots, with `trainset_reports`
    ({model: `trainsets/<model>.json`}) for the training rows.

    Raises:
        ValueError: naming `evaluate.main_method` when it is not among the evaluated methods;
            naming the (method, target) pairs of the evaluation that have no KL rows; naming
            the method and target of evaluated rows without a judged row
            (`judged.attach_judges`); when judges are configured without their files.
    """
    results = Path(results)
    if isinstance(evaluated, (str, os.PathLike)):  # Snakemake hands over one file as a string
        evaluated = [evaluated]
    targets_list = load_targets(targets)
    evaluated_frames = [pd.read_parquet(path) for path in evaluated]
    reference_frame = pd.read_parquet(references)
    frame = combine(evaluated_frames, reference_frame, targets_list)
    judges = dict(judges or {})
    judge = held_out_judge(judges, main_judge)
    agreement, judge_reference = None, float("nan")
    if judges:
        if isinstance(judged, (str, os.PathLike)):
            judged = [judged]
        if not judged or judged_references is None or judges_table is None:
            raise ValueError(
                f"publish: evaluate.judges {list(judges)} needs the judged files and judges.csv"
            )
        judged_reference_frame = pd.read_parquet(judged_references)
        frame = attach_judges(
            frame, [pd.read_parquet(path) for path in judged], judged_reference_frame, judges
        )
        # The references' own figure on the judge: their mean score, or a tie with themselves.
        judge_reference = (
            judged_reference_frame[judge_column(judge.name)].mean() if judge.scores else 0.5
        )
        agreement = pd.read_csv(judges_table)
    methods = list(frame["method"].unique())
    if main_method is not None and main_method not in methods:
        raise ValueError(f"evaluate.main_method {main_method!r} is not among methods {methods}")
    settings = BootstrapSettings(n_resamples, level, seed)
    kl_rows = read_kl(kl)
    tables = build_tables(
        frame,
        targets_list,
        settings,
        kl=summarize_kl(kl_rows, n_resamples=n_resamples, level=level, seed=seed),
        train_seconds=training_seconds(benchmarks, methods),
        main_method=main_method,
        judges=judges,
        main_judge=main_judge,
        online_costs=online_costs(round_reports, methods, policy_samples)
        if round_reports
        else None,
    )
    titles = {
        "summary": "Summary: one row per method x target",
        "correlation": "Spearman(target, reward) over in-range targets, per conditioned method",
        "winrate": "Win rate against the reference summary, per method at its headline target",
        "comparisons": "Paired bootstrap differences behind the verdict",
        "matched_kl": "The main method against rloo at matched KL from sft"
        + (f" (held-out judge {judge.name})" if judge else " (no held-out judge: the proxy only)"),
        "overoptimisation": "Every method x condition against sft: "
        + (
            f"RM and {judge.label} differences (held-out judge {judge.name})"
            if judge
            else "RM differences only (no held-out judge: evaluate.judges is empty)"
        ),
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
    plot_overoptimisation(
        tables["summary"], frame, reference_frame, judge, judge_reference, plots["overoptimisation"]
    )
    plot_winrate(tables["winrate"], plots["winrate"])
    plot_frontier(tables["summary"], plots["frontier"], judge)
    seed_tables, seed_section, shown = publish_replicates(
        frame, tables["summary"], targets_list, settings, results, kl=kl_rows,
        main_method=main_method, judge=judge, rule=collapse, trainset_reports=trainset_reports,
        correlation=tables["correlation"],
    )  # fmt: skip
    report = render_report(
        tables | (seed_tables if shown else {}),
        setup=setup or {},
        sizes=data_sizes(data_files or {}),
        times=stage_times(benchmarks),
        references=reference_frame,
        level=level,
        main_method=main_method,
        machine=hardware(),
        judges=agreement,
        judge=judge,
        seed_section=seed_section,
    )
    write_text(results / "REPORT.md", report)
    log.info("published %s", results)
    return tables

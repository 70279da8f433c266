"""REPORT.md and the rule `publish`: the tables (CSV + Markdown), the plots and the report."""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rewardcond.artifacts import write_table, write_text
from rewardcond.evaluation.comparisons import compare_methods, correlations
from rewardcond.evaluation.summary import combine, read_benchmark_seconds, summarize, win_rates
from rewardcond.evaluation.targets import Target, load_targets
from rewardcond.report.plots import (
    plot_calibration,
    plot_overoptimisation,
    plot_reward_distribution,
    plot_winrate,
)
from rewardcond.report.verdict import fmt, has_gold, verdict_lines
from rewardcond.stats import MIN_PROMPTS, BootstrapSettings

log = logging.getLogger(__name__)

REWARD_MODEL_NOTE = "the run's trained reward model (`reward_model/model/manifest.json`)"
TABLES = ("summary", "correlation", "winrate", "comparisons")
#: The figures under `plots/`, `<name>.png` each.
PLOTS = ("calibration", "reward_distribution", "overoptimisation", "winrate")
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
    train_seconds: Mapping[str, float] | None = None,
    main_method: str | None = None,
) -> dict[str, pd.DataFrame]:
    """summary, correlation, winrate and comparisons tables from `combine`'s frame."""
    summary = summarize(frame, targets, settings)
    correlation = correlations(frame, settings)
    return {
        "summary": summary,
        "correlation": correlation,
        "winrate": win_rates(summary, dict(train_seconds or {})),
        "comparisons": compare_methods(frame, summary, correlation, settings, main_method),
    }


def training_seconds(benchmarks: str | os.PathLike, methods: Sequence[str]) -> dict[str, float]:
    """Training seconds per method from `benchmarks/train/{method}.tsv`, where present."""
    seconds = {}
    for method in methods:
        path = Path(benchmarks) / "train" / f"{method}.tsv"
        if path.exists():
            seconds[method] = read_benchmark_seconds(path)
    return seconds


def stage_times(benchmarks: str | os.PathLike) -> pd.DataFrame:
    """Every Snakemake benchmark file under `benchmarks/`: rule, job, seconds, max RSS (MB)."""
    records = []
    root = Path(benchmarks)
    for path in sorted(root.glob("**/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        relative = path.relative_to(root).with_suffix("")
        records.append(
            {
                "rule": relative.parts[0],
                "job": "/".join(relative.parts[1:]) or relative.parts[0],
                "seconds": float(table["s"].mean()) if "s" in table else float("nan"),
                "max_rss_mb": float(table["max_rss"].mean()) if "max_rss" in table else np.nan,
            }
        )
    return pd.DataFrame.from_records(records, columns=["rule", "job", "seconds", "max_rss_mb"])


def data_sizes(files: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """Rows of each named Parquet file, split by its `split` column where it has one."""
    records = []
    for name, path in files.items():
        frame = pd.read_parquet(path)
        record = {"data": name, "rows": len(frame)}
        if "split" in frame.columns:
            counts = frame["split"].fillna("(none)").value_counts().sort_index()
            record["by_split"] = ", ".join(f"{split}: {count}" for split, count in counts.items())
        else:
            record["by_split"] = ""
        records.append(record)
    return pd.DataFrame.from_records(records, columns=["data", "rows", "by_split"])


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


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".3f") if len(frame) else "(empty)"


def models_line(setup: Mapping) -> str:
    """The `base_models:` of the configuration in one line: each name with its scalar settings
    (hub id, revision, sizes); the full specs are in the resolved configuration."""
    base_models = setup.get("base_models")
    if not isinstance(base_models, Mapping) or not base_models:
        return "see the resolved configuration below"
    described = []
    for name, spec in base_models.items():
        settings = spec.items() if isinstance(spec, Mapping) else []
        scalars = [f"{key}={value}" for key, value in settings if isinstance(value, str | int)]
        described.append(f"`{name}` ({', '.join(scalars)})" if scalars else f"`{name}`")
    return "base models " + "; ".join(described) + f"; reward model: {reward_model_line(setup)}"


def reward_model_line(setup: Mapping) -> str:
    """The reward model the run scored with: the pinned hub model (`reward_model.kind:
    pretrained`) or the one trained in the run."""
    section = setup.get("reward_model")
    if isinstance(section, Mapping) and section.get("kind") == "pretrained":
        pretrained = section.get("pretrained", {})
        return f"pretrained `{pretrained.get('hub_id')}` at revision {pretrained.get('revision')}"
    return REWARD_MODEL_NOTE


def hardware() -> str:
    """The machine that ran the publishing step: CPU count, platform and CUDA device if any."""
    import torch

    description = f"{platform.platform()}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        description += f", CUDA: {torch.cuda.get_device_name(0)}"
    return description + f"; torch {torch.__version__}"


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
    compact = summary[["method", "target_name", "target_reward", "n"]].copy()
    compact.insert(3, "in range", summary["in_range"].map({True: "yes", False: "no"}).fillna(""))
    compact["achieved reward"] = _with_ci(summary, "achieved_reward_mean", "achieved_reward")
    compact["gold reward"] = _with_ci(summary, "gold_reward_mean", "gold_reward")
    compact[["rouge1", "rouge2", "rougeL", "length", "eos", "distinct2"]] = summary[
        ["rouge1", "rouge2", "rougeL", "length_mean", "eos_rate", "distinct2"]
    ]
    compact["win rate (RM)"] = summary["winrate_rm"]
    compact["win rate (gold)"] = summary["winrate_gold"]
    wins = winrate[["method", "target_name", "n"]].copy()
    wins["win rate (RM)"] = _with_ci(winrate, "winrate_rm", "winrate_rm")
    wins["win rate (gold)"] = _with_ci(winrate, "winrate_gold", "winrate_gold")
    wins[["train s", "tokens/prompt", "N"]] = winrate[
        ["train_seconds", "generated_tokens_per_prompt", "n_candidates"]
    ]
    per_rule = times.groupby("rule", sort=False)["seconds"].agg(["count", "sum", "max"])
    per_rule = per_rule.reset_index().rename(
        columns={"count": "jobs", "sum": "seconds (total)", "max": "seconds (slowest job)"}
    )
    verdict = "\n".join(f"- {line}" for line in verdict_lines(tables, level, main_method))
    correlation, gold = tables["correlation"], has_gold(tables)
    if not gold:  # real data: no empty gold columns
        compact = compact.drop(columns=["gold reward", "win rate (gold)"])
        wins = wins.drop(columns=["win rate (gold)"])
        correlation = correlation[[c for c in correlation.columns if "gold" not in c]]
    gold_mean = references["gold"].mean()
    reference_line = (
        f"Reference summaries: mean reward-model score {fmt(references['reward'].mean())}"
    )
    reference_line += "" if pd.isna(gold_mean) else f", mean gold reward {fmt(gold_mean)}"
    data = setup.get("data", {}) if isinstance(setup.get("data"), Mapping) else {}
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

{_markdown(wins)}

## Calibration (in-range targets)
{_markdown(correlation)}

## Summary (method x target)
{_markdown(compact)}

Full tables with every column: `tables/summary.csv`, `tables/correlation.csv`,
`tables/winrate.csv`, `tables/comparisons.csv`. Plots: `plots/`.

## Anchors (other setups)
{ANCHORS.format(gold=", in the synthetic world also by the gold function" if gold else "")}
## Resolved configuration
```yaml
{yaml.safe_dump(dict(setup), sort_keys=False).rstrip()}
```

## Jobs
{_markdown(times)}
"""


def publish(
    *,
    evaluated: str | os.PathLike | Sequence[str | os.PathLike],
    references: str | os.PathLike,
    targets: str | os.PathLike,
    results: str | os.PathLike,
    benchmarks: str | os.PathLike = "benchmarks",
    data_files: Mapping[str, str | os.PathLike] | None = None,
    setup: Mapping | None = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    main_method: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Rule `publish`: write `tables/`, `plots/` and `REPORT.md` under `results`."""
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
        train_seconds=training_seconds(benchmarks, methods),
        main_method=main_method,
    )
    titles = {
        "summary": "Summary: one row per method x target",
        "correlation": "Spearman(target, reward) over in-range targets, per conditioned method",
        "winrate": "Win rate against the reference summary, per method at its headline target",
        "comparisons": "Paired bootstrap differences behind the verdict",
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
    plot_overoptimisation(tables["summary"], plots["overoptimisation"])
    plot_winrate(tables["winrate"], plots["winrate"])
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

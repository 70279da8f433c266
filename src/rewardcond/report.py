"""Publishing the evaluation: tables (CSV + Markdown), plots (PNG) and REPORT.md with a verdict.

Layout under `results/<run>/`:
- `tables/summary.*`: one row per method x target (a baseline has one row, target `none`);
- `tables/correlation.*`: one row per conditioned method, Spearman over its in-range targets;
- `tables/winrate.*`: one row per method at its headline target (the in-range target with the
  highest mean reward-model score; `none` for a baseline), with cost columns; the win rate at
  every target is in `summary`;
- `tables/comparisons.*`: paired bootstrap differences behind the verdict;
- `plots/*.png` and `REPORT.md`.

The verdict is computed from these tables by `verdict_lines`; nothing in it is hand-written.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rewardcond.artifacts import atomic_path, write_table, write_text
from rewardcond.evaluation import (
    IN_RANGE,
    MIN_PROMPTS,
    NO_TARGET,
    BootstrapSettings,
    Target,
    combine,
    compare_methods,
    correlations,
    load_targets,
    rankable,
    read_benchmark_seconds,
    summarize,
    win_rates,
)

log = logging.getLogger(__name__)

REWARD_MODEL_NOTE = "the run's trained reward model (`reward_model/model/manifest.json`)"
GOLD_METRICS = ("gold_reward", "winrate_gold")
NO_GOLD = (
    "No ground-truth reward in this run (real data has none): every reward and win rate here is "
    "the reward model's, a proxy."
)
TABLES = ("summary", "correlation", "winrate", "comparisons")
PLOTS = ("calibration", "reward_distribution", "overoptimisation", "winrate")
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


# --- the verdict ----------------------------------------------------------------------------


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def _interval(low: float, high: float, level: float) -> str:
    return f"[{level:.0%} CI {_fmt(low)}, {_fmt(high)}]"


def _at(method: str, target_name: str) -> str:
    return method if target_name in (NO_TARGET, IN_RANGE) else f"{method} @ {target_name}"


def _comparison_clause(row: pd.Series, level: float) -> str:
    verdict = "significant" if row["significant"] else "not significant"
    method = _at(row["method"], row["target_name"])
    other = _at(row["other"], row["other_target_name"])
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
    any gold reward (real data) one line says so and no gold metric is mentioned."""
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
        line = (
            f"{title}: **{_at(best['method'], target)}** with "
            f"{_fmt(best[column])} {_interval(best[low], best[high], level)}"
        )
        if metric == "spearman_pooled":
            line += f", calibration MAE |achieved - target| {_fmt(best['calibration_mae'])}"
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
            reasons.append(f"{_at(row['method'], row.get('target_name', NO_TARGET))} ({reason})")
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
            f"reward-model score (Spearman {_fmt(row['spearman_pooled'])} {proxy}) while the "
            f"gold reward falls (Spearman {_fmt(row['spearman_gold_pooled'])} {gold}). The "
            "policy is exploiting the proxy: this is over-optimisation."
        )
    if not_diverging:
        lines.append(
            "Proxy and gold do not move in significantly opposite directions with the target for: "
            + ", ".join(not_diverging)
            + "."
        )
    return lines


# --- plots ----------------------------------------------------------------------------------


def _save(figure, path: str | os.PathLike) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _error(rows: pd.DataFrame, prefix: str) -> np.ndarray:
    mean = rows[f"{prefix}_mean"].to_numpy(dtype=float)
    return np.vstack([mean - rows[f"{prefix}_ci_low"], rows[f"{prefix}_ci_high"] - mean])


def plot_calibration(summary: pd.DataFrame, reference_reward: float, path) -> None:
    """Target vs achieved reward per conditioned method, with y = x; baselines as lines."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 5))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(summary["method"].unique())}
    conditioned = summary[summary["target_name"] != NO_TARGET]
    for method, rows in conditioned.groupby("method", sort=False):
        rows = rows.sort_values("target_reward")
        axis.errorbar(
            rows["target_reward"],
            rows["achieved_reward_mean"],
            yerr=_error(rows, "achieved_reward"),
            marker="o",
            capsize=3,
            color=colors[method],
            label=method,
        )
        outside = rows[~rows["in_range"].fillna(False)]
        axis.scatter(
            outside["target_reward"],
            outside["achieved_reward_mean"],
            s=90,
            facecolors="white",
            edgecolors=colors[method],
            zorder=3,
        )
    for method, rows in summary[summary["target_name"] == NO_TARGET].groupby("method", sort=False):
        mean = rows["achieved_reward_mean"].iloc[0]
        axis.axhline(mean, linestyle=":", color=colors[method], label=method)
    axis.axhline(reference_reward, color="grey", linestyle="--", label="reference summaries")
    lows = np.nanmin([summary["achieved_reward_mean"].min(), conditioned["target_reward"].min()])
    highs = np.nanmax([summary["achieved_reward_mean"].max(), conditioned["target_reward"].max()])
    axis.plot([lows, highs], [lows, highs], color="black", linewidth=1, label="y = x")
    axis.set(xlabel="target reward (raw RM units)", ylabel="achieved reward (RM), mean")
    axis.set_title("Calibration (hollow: targets outside the training range)")
    axis.legend(fontsize="small")
    _save(figure, path)


def plot_reward_distribution(frame: pd.DataFrame, targets: Sequence[Target], path) -> None:
    """Box plots of achieved reward at each target, one panel per method."""
    plt = _pyplot()
    methods = list(frame["method"].unique())
    figure, axes = plt.subplots(
        1, len(methods), figsize=(3.2 * len(methods), 4), sharey=True, squeeze=False
    )
    order = [target.name for target in targets] + [NO_TARGET]
    for axis, method in zip(axes[0], methods, strict=True):
        rows = frame[frame["method"] == method]
        names = [name for name in order if name in set(rows["target_name"])]
        axis.boxplot(
            [rows.loc[rows["target_name"] == name, "reward"] for name in names],
            tick_labels=names,
        )
        axis.set_title(method)
        axis.tick_params(axis="x", rotation=60)
    axes[0][0].set_ylabel("achieved reward (RM)")
    _save(figure, path)


def plot_overoptimisation(summary: pd.DataFrame, path) -> None:
    """Gold vs proxy (RM) reward at each target: a proxy that rises while gold falls is
    over-optimisation. Without a gold function the figure says so."""
    plt = _pyplot()
    conditioned = summary[summary["target_name"] != NO_TARGET]
    methods = list(conditioned["method"].unique())
    if conditioned["gold_reward_mean"].isna().all() or not methods:
        figure, axis = plt.subplots(figsize=(6, 2))
        axis.axis("off")
        axis.text(0.5, 0.5, "No gold reward in this world (real data).", ha="center")
        _save(figure, path)
        return
    figure, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 4), squeeze=False)
    for axis, method in zip(axes[0], methods, strict=True):
        rows = conditioned[conditioned["method"] == method].sort_values("target_reward")
        axis.errorbar(
            rows["target_reward"],
            rows["achieved_reward_mean"],
            yerr=_error(rows, "achieved_reward"),
            marker="o",
            capsize=3,
            color="tab:blue",
        )
        axis.set_ylabel("proxy: reward-model score", color="tab:blue")
        gold_axis = axis.twinx()
        gold_axis.errorbar(
            rows["target_reward"],
            rows["gold_reward_mean"],
            yerr=_error(rows, "gold_reward"),
            marker="s",
            capsize=3,
            color="tab:red",
        )
        gold_axis.set_ylabel("gold reward", color="tab:red")
        axis.set(title=method, xlabel="target reward (raw RM units)")
    figure.tight_layout()
    _save(figure, path)


def plot_winrate(winrate: pd.DataFrame, path) -> None:
    """Win rate against the reference per method (headline target), RM and gold, with CIs."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(5, 1.1 * len(winrate)), 4))
    positions = np.arange(len(winrate))
    kinds = [("rm", "reward model")]
    if winrate["winrate_gold"].notna().any():
        kinds.append(("gold", "gold"))
    width = 0.8 / len(kinds)
    for i, (kind, label) in enumerate(kinds):
        mean = winrate[f"winrate_{kind}"].to_numpy(dtype=float)
        error = np.vstack(
            [mean - winrate[f"winrate_{kind}_ci_low"], winrate[f"winrate_{kind}_ci_high"] - mean]
        )
        axis.bar(positions + i * width, mean, width, yerr=error, capsize=3, label=label)
    labels = [_at(m, t) for m, t in zip(winrate["method"], winrate["target_name"], strict=True)]
    axis.set_xticks(positions + width * (len(kinds) - 1) / 2, labels, rotation=30, ha="right")
    axis.axhline(0.5, color="black", linewidth=1)
    axis.set(ylabel="win rate vs reference summary", ylim=(0, 1))
    axis.legend()
    _save(figure, path)


# --- REPORT.md ------------------------------------------------------------------------------


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
        f"Reference summaries: mean reward-model score {_fmt(references['reward'].mean())}"
    )
    reference_line += "" if pd.isna(gold_mean) else f", mean gold reward {_fmt(gold_mean)}"
    data = setup.get("data", {}) if isinstance(setup.get("data"), Mapping) else {}
    return f"""# Report: run `{setup.get("run", "?")}`

Generated by `rewardcond.report.publish` from the tables in `tables/`; do not edit by hand.

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
    plots = results / "plots"
    plot_calibration(tables["summary"], reference_frame["reward"].mean(), plots / "calibration.png")
    plot_reward_distribution(frame, targets_list, plots / "reward_distribution.png")
    plot_overoptimisation(tables["summary"], plots / "overoptimisation.png")
    plot_winrate(tables["winrate"], plots / "winrate.png")
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

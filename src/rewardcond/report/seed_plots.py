"""The seed post's two figures (issue 19 §2), from `evaluation.questions`' tables: achieved vs
requested reward (extrapolation) and the judge's figure against training examples
(efficiency). Means over seeds, bars the hierarchical intervals. A run without what a figure
needs gets a figure that says so (the rule `publish` declares fixed outputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.questions import EFFICIENCY_METHODS
from rewardcond.report.plots import _pyplot, _save


def _bars(rows: pd.DataFrame) -> np.ndarray:
    mean, low, high = (rows[name].to_numpy(dtype=float) for name in ("mean", "ci_low", "ci_high"))
    return np.vstack([mean - low, high - mean])


def _colors(plt) -> dict[str, str]:
    """One colour per method in both panels of a figure."""
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {method: palette[i] for i, method in enumerate(EFFICIENCY_METHODS)}


def plot_not_configured(path, title: str, why: str) -> None:
    """A figure that says `title` is not drawn in this run, and `why`."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 2))
    axis.axis("off")
    axis.text(0.5, 0.5, f"{title}: not configured in this run\n({why})", ha="center", va="center")
    _save(figure, path)


def plot_extrapolation(
    table: pd.DataFrame, maximum: float, path, judge: HeldOutJudge | None = None
) -> None:
    """Achieved vs requested reward per method (`scalar`, `text`): RM panel with y = x, and the
    main judge's panel; the training maximum (`questions.training_maximum`) a vertical line;
    beyond-max targets drawn hollow. `table`: `questions.extrapolation_table`."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(table["metric"]))
    figure, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        rows = table[table["metric"] == metric]
        for method, part in rows.groupby("method", sort=False):
            part = part.sort_values("target_reward")
            line = axis.errorbar(
                part["target_reward"].to_numpy(float), part["mean"].to_numpy(float),
                yerr=_bars(part), marker="o", capsize=3, color=_colors(plt).get(method),
                label=f"{method} (n seeds {part['n_seeds'].max()})",
            )  # fmt: skip
            beyond = part[~part["in_range"].astype(bool)]
            axis.scatter(
                beyond["target_reward"], beyond["mean"], s=80, facecolors="white",
                edgecolors=line[0].get_color(), zorder=3,
            )  # fmt: skip
        axis.axvline(maximum, color="grey", linestyle="--", label="training maximum")
        if metric == "achieved_reward":
            low, high = table["target_reward"].min(), table["target_reward"].max()
            axis.plot([low, high], [low, high], color="black", linewidth=0.8, label="y = x")
            axis.set_ylabel("achieved reward-model score (mean over seeds)")
        else:
            axis.set_ylabel(f"{judge.label if judge else metric} (mean over seeds)")
        axis.set_xlabel("requested target reward")
        axis.legend(fontsize=8)
    figure.suptitle("Extrapolation: hollow points are targets above the training range")
    _save(figure, path)


def plot_efficiency(table: pd.DataFrame, path, judge: HeldOutJudge) -> None:
    """The main judge's figure at the top in-range target, and Spearman(target, judge), against
    the training rows (or the percent of the pool when a trainset report has no `rows`), one line
    per method. `table`: `questions.efficiency_table`."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(table["metric"]))
    figure, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), squeeze=False)
    by_rows = bool(table["training_rows"].notna().all())
    x = "training_rows" if by_rows else "pool_percent"
    for axis, metric in zip(axes[0], metrics, strict=True):
        for method, part in table[table["metric"] == metric].groupby("method", sort=False):
            part = part.sort_values("pool_percent")
            x_values, means = part[x].to_numpy(float), part["mean"].to_numpy(float)
            axis.errorbar(x_values, means, yerr=_bars(part), marker="o", capsize=3, label=method,
                          color=_colors(plt).get(method))  # fmt: skip
        axis.set_xlabel(
            "training examples (rows)" if by_rows
            else "percent of the training pool (a trainset report has no `rows`)"
        )  # fmt: skip
        axis.set_ylabel(
            f"{judge.label} at the top in-range target" if metric == judge.metric
            else f"Spearman(target, {judge.name}), in-range targets"
        )  # fmt: skip
        axis.set_xscale("log")
        # Ticks at the configured sizes, written out: log-scale defaults overlap between decades.
        ticks = sorted(set(table[x].dropna().astype(int)))
        axis.set_xticks(ticks, [f"{tick:,}" for tick in ticks], minor=False)
        axis.set_xticks([], minor=True)
        axis.legend(fontsize=8)
    figure.suptitle("Efficiency: means over seeds, hierarchical bootstrap intervals")
    _save(figure, path)

"""The figures of a run: calibration, reward distribution per target, gold vs proxy, win rates."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rewardcond.artifacts import atomic_path
from rewardcond.evaluation.targets import Target
from rewardcond.report.verdict import method_label
from rewardcond.tables import NO_TARGET


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
    labels = [
        method_label(m, t) for m, t in zip(winrate["method"], winrate["target_name"], strict=True)
    ]
    axis.set_xticks(positions + width * (len(kinds) - 1) / 2, labels, rotation=30, ha="right")
    axis.axhline(0.5, color="black", linewidth=1)
    axis.set(ylabel="win rate vs reference summary", ylim=(0, 1))
    axis.legend()
    _save(figure, path)

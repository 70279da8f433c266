"""The figures of a run: calibration, reward distribution per target, gold vs proxy, win rates,
reward against KL from sft (the frontier)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rewardcond.artifacts import atomic_path
from rewardcond.evaluation.frontier import frontier_points, round_paths
from rewardcond.evaluation.judged import HeldOutJudge
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


def _error(rows: pd.DataFrame, prefix: str | tuple[str, str, str]) -> np.ndarray:
    """Error bars from a mean and its interval: columns `<prefix>_mean`, `_ci_low`, `_ci_high`,
    or the three columns named (e.g. `HeldOutJudge.interval`)."""
    mean_column, low, high = (
        prefix
        if isinstance(prefix, tuple)
        else (f"{prefix}_{s}" for s in ("mean", "ci_low", "ci_high"))
    )
    mean = rows[mean_column].to_numpy(dtype=float)
    return np.vstack([mean - rows[low], rows[high] - mean])


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
    # y = x is drawn across the targets, but the y axis is fitted to the achieved rewards (their
    # intervals, the baselines and the references): targets far above anything achieved would
    # otherwise squeeze every mean into a sliver.
    y_values = np.concatenate(
        [
            summary[["achieved_reward_ci_low", "achieved_reward_ci_high"]].to_numpy(float).ravel(),
            [reference_reward],
        ]
    )
    y_low, y_high = np.nanmin(y_values), np.nanmax(y_values)
    margin = 0.05 * (y_high - y_low) or 0.5
    x_low, x_high = conditioned["target_reward"].min(), conditioned["target_reward"].max()
    if np.isfinite([x_low, x_high]).all():
        axis.plot([x_low, x_high], [x_low, x_high], color="black", linewidth=1, label="y = x")
    axis.set_ylim(y_low - margin, y_high + margin)
    axis.set(xlabel="target reward (raw RM units)", ylabel="achieved reward (RM), mean")
    axis.set_title(
        "Calibration (hollow: targets outside the training range;\n"
        "y axis fitted to the achieved rewards, y = x clipped)"
    )
    axis.legend(fontsize="small")
    _save(figure, path)


def plot_reward_distribution(frame: pd.DataFrame, targets: Sequence[Target], path) -> None:
    """Box plots of achieved reward at each target, one panel per conditioned method and one
    panel for every baseline (one box each), on one y scale."""
    plt = _pyplot()
    order = [target.name for target in targets]
    conditioned = [
        m
        for m in frame["method"].unique()
        if (frame["method"] == m).any()
        and (frame.loc[frame["method"] == m, "target_name"] != NO_TARGET).all()
    ]
    baselines = [m for m in frame["method"].unique() if m not in conditioned]
    panels = [
        (
            m,
            [
                (n, frame[(frame["method"] == m) & (frame["target_name"] == n)]["reward"])
                for n in order
                if n in set(frame.loc[frame["method"] == m, "target_name"])
            ],
        )
        for m in conditioned
    ]
    if baselines:
        boxes = [(m, frame.loc[frame["method"] == m, "reward"]) for m in baselines]
        panels.append(("baselines (no target)", boxes))
    widths = [max(2.5, 0.45 * len(boxes) + 1) for _, boxes in panels]
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(sum(widths), 4),
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for axis, (title, boxes) in zip(axes[0], panels, strict=True):
        axis.boxplot([values.dropna() for _, values in boxes], tick_labels=[n for n, _ in boxes])
        axis.set_title(title)
        axis.tick_params(axis="x", rotation=60)
    axes[0][0].set_ylabel("achieved reward (RM, raw units)")
    _save(figure, path)


def _scale(values: pd.Series) -> tuple[float, str]:
    """The spread that standardises a reward: its standard deviation over every evaluated
    summary of the run (all methods and targets), with its description. Not the reference
    summaries': their gold sits near its ceiling (sd 0.11 on the demo, against 1.9 for the RM),
    which would stretch gold tenfold."""
    spread = float(np.nanstd(values.to_numpy(float)))
    return (spread if spread > 0 else 1.0), f"{spread:.3g} (its sd over all evaluated summaries)"


def _no_judge(path) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 2))
    axis.axis("off")
    axis.text(0.5, 0.5, "No held-out judge (evaluate.judges is empty): the proxy only.",
              ha="center")  # fmt: skip
    _save(figure, path)


def plot_overoptimisation(
    summary: pd.DataFrame,
    frame: pd.DataFrame,
    references: pd.DataFrame,
    judge: HeldOutJudge | None,
    judge_reference: float,
    path,
) -> None:
    """The held-out `judge` (`evaluate.main_judge`) against the proxy for every method x
    condition on one scale: each figure minus the reference summaries' (the proxy's: the mean
    RM reward of `references`; the judge's: `judge_reference`, the references' mean score, or
    0.5 for an llm judge's win rate), divided by its spread over the run's summaries
    (`_scale`), so that one unit means the same on both axes. Below the diagonal the judge
    confirms less than the proxy claims; right of sft and below it (shaded) is
    over-optimisation. Bars: each point's own interval (not paired). Without a judge the figure
    says so."""
    if judge is None:
        _no_judge(path)
        return
    plt = _pyplot()
    rm_scale, rm_text = _scale(frame["reward"])
    judge_scale, judge_text = _scale(frame[judge.row_column])

    def standard(rows, prefix, column, mean, scale):
        values = (rows[column].to_numpy(float) - mean) / scale
        error = _error(rows, prefix) / scale
        return values, error

    figure, axis = plt.subplots(figsize=(7, 6))
    rm_mean = references["reward"].mean()
    for method, rows in summary.groupby("method", sort=False):
        rows = rows.sort_values("target_reward")
        x, x_error = standard(rows, "achieved_reward", "achieved_reward_mean", rm_mean, rm_scale)
        y, y_error = standard(rows, judge.interval, judge.metric, judge_reference, judge_scale)
        axis.errorbar(
            x,
            y,
            xerr=x_error,
            yerr=y_error,
            marker="o",
            capsize=2,
            label=method,
            linestyle="-" if len(rows) > 1 else "none",
        )
    low = min(axis.get_xlim()[0], axis.get_ylim()[0])
    high = max(axis.get_xlim()[1], axis.get_ylim()[1])
    axis.plot([low, high], [low, high], color="black", linewidth=1, label="y = x")
    sft = summary[summary["method"] == "sft"]
    if len(sft):
        x0 = (sft["achieved_reward_mean"].iloc[0] - rm_mean) / rm_scale
        y0 = (sft[judge.metric].iloc[0] - judge_reference) / judge_scale
        axis.axvline(x0, color="grey", linestyle=":", linewidth=1)
        axis.axhline(y0, color="grey", linestyle=":", linewidth=1)
        axis.fill_between(
            [x0, high], low, y0, color="tab:red", alpha=0.08,
            label=f"proxy above sft, {judge.name} below",
        )  # fmt: skip
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    axis.set_aspect("equal")
    reference = "references' mean" if judge.scores else "0.5, a tie with the reference"
    axis.set(
        xlabel=f"proxy: (RM reward - references' mean) / {rm_text}",
        ylabel=f"held-out judge: ({judge.label} - {reference})\n/ {judge_text}",
        title=f"Held-out judge {judge.name} against the proxy, every method x target, one scale",
    )
    axis.legend(fontsize="small")
    _save(figure, path)


def plot_frontier(summary: pd.DataFrame, path, judge: HeldOutJudge | None = None) -> None:
    """Reward against sqrt(KL from sft) (Gao et al. 2022): one panel for the held-out `judge`
    (`evaluate.main_judge`: its score, or an llm judge's win rate against the reference; none
    without a judge, which the title then says) and one for the proxy (RM), in raw units each;
    a curve per conditioned method across its targets (in target order, each point named),
    best-of-N across N (from sft at N = 1), a point per other method; bars are the intervals
    (KL's as sqrt of its interval, clipped at 0). Points with an infinite or missing KL are
    listed in the title, not drawn. A method trained in online rounds also gets a dashed path
    through its rounds at their top in-range target (`frontier.round_paths`), each point named
    `r<round>`."""
    plt = _pyplot()
    panels = [(("achieved_reward_mean", "achieved_reward_ci_low", "achieved_reward_ci_high"),
               "proxy: reward-model reward (raw RM units)")]  # fmt: skip
    if judge is not None:
        units = "the judge's units" if judge.scores else "share of wins, ties half"
        panels.insert(0, (judge.interval, f"held-out judge: {judge.label} ({units})"))
    figure, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    hidden = []
    for label, rows in frontier_points(summary):
        finite = rows[np.isfinite(rows["kl_sft"].to_numpy(float))]
        hidden += [
            method_label(row.method, row.target_name)
            for row in rows.itertuples(index=False)
            if not np.isfinite(row.kl_sft)
        ]
        if finite.empty:
            continue
        kl = finite["kl_sft"].clip(lower=0).to_numpy(float)
        x = np.sqrt(kl)
        x_low = np.sqrt(finite["kl_sft_ci_low"].fillna(finite["kl_sft"]).clip(lower=0))
        x_high = np.sqrt(finite["kl_sft_ci_high"].fillna(finite["kl_sft"]).clip(lower=0))
        x_error = np.vstack([x - x_low, x_high - x])
        style = {"marker": "o"}
        if label == "sft":  # the origin, under best-of-N's first point: drawn on top
            style = {"marker": "*", "markersize": 14, "zorder": 4}
        for axis, (columns, _) in zip(axes[0], panels, strict=True):
            axis.errorbar(
                x,
                finite[columns[0]],
                xerr=x_error,
                yerr=_error(finite, columns),
                capsize=2,
                label=label,
                linestyle="-" if len(finite) > 1 else "none",
                **style,
            )
            if label != "best-of-N" and len(finite) > 1:  # a conditioned method: name its targets
                for xi, yi, name in zip(x, finite[columns[0]], finite["target_name"], strict=True):
                    axis.annotate(name, (xi, yi), fontsize=6, xytext=(3, 3),
                                  textcoords="offset points")  # fmt: skip
    for method, rows in round_paths(summary):  # online rounds (issue 18): r1 -> r2 -> ...
        rows = rows[np.isfinite(rows["kl_sft"].to_numpy(float))]
        x = np.sqrt(rows["kl_sft"].clip(lower=0).to_numpy(float))
        for axis, (columns, _) in zip(axes[0], panels, strict=True):
            y = rows[columns[0]].to_numpy(float)
            axis.plot(x, y, color="black", linestyle="--", linewidth=1.5, zorder=5,
                      label=f"{method}: rounds at the top in-range target")  # fmt: skip
            for xi, yi, round_number in zip(x, y, rows["round"], strict=True):
                axis.annotate(f"r{round_number}", (xi, yi), fontsize=8, weight="bold",
                              xytext=(-12, 4), textcoords="offset points")  # fmt: skip
    for axis, (_, ylabel) in zip(axes[0], panels, strict=True):
        axis.set(xlabel="sqrt(KL(pi || pi_sft)), sqrt(nats per sequence)", ylabel=ylabel)
        axis.legend(fontsize="small")
    title = "Reward against distance from sft (KL of the temperature-1 sampling policy)"
    if judge is None:
        title += "\nno held-out judge (evaluate.judges is empty): the proxy only"
    hidden = sorted(set(hidden))
    if hidden:
        title += "\nnot drawn (KL infinite or missing): " + ", ".join(hidden)
    figure.suptitle(title)
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

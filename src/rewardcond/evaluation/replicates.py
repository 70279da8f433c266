"""Figures across training seeds (issue 19): every model-without-seed x condition as the mean
over its replicates (`<method>-s<seed>`, the run's own seed being the plain name) with a
hierarchical bootstrap interval that resamples seeds, then prompts within each seed
(`stats.hierarchical_bootstrap`; for means its vectorised `hierarchical_mean_bootstrap`),
each seed's own figure in a long table, and the verdict's paired differences (main method vs
each other method) paired by seed and by prompt.

Model names follow `modules.ModelName`; a model's *group* is its name with the seed removed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from rewardcond.evaluation.comparisons import compared_metrics, judge_spearman, spearman_note
from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.summary import best_targets
from rewardcond.evaluation.targets import IN_RANGE
from rewardcond.modules import ModelName
from rewardcond.stats import (
    BootstrapSettings,
    hierarchical_bootstrap,
    hierarchical_mean_bootstrap,
    spearman,
    spearman_per_prompt,
)

log = logging.getLogger(__name__)

REPLICATE_COLUMNS = ["group", "method", "round", "pool_percent"]


def replicate_of(model: str, run_seed: int) -> tuple[str, int]:
    """(group, seed) of a model name: `scalar-f30-s7` is seed 7 of `scalar-f30`; a name without
    `-s<seed>` is the run's own seed `run_seed` of itself."""
    name = ModelName.parse(model)
    seed = run_seed if name.seed is None else name.seed
    return str(dataclasses.replace(name, seed=None)), seed


def replicate_index(models, run_seed: int) -> pd.DataFrame:
    """One row per model: model, group, method, round, pool_percent, seed (in `models`' order).

    Raises ValueError naming the group when two of its models have the same seed (the plain name
    and `-s<run seed>` both given)."""
    records = []
    for model in models:
        name = ModelName.parse(model)
        group, seed = replicate_of(model, run_seed)
        records.append(
            {"model": model, "group": group, "method": name.method, "round": name.round,
             "pool_percent": name.percent, "seed": seed}
        )  # fmt: skip
    index = pd.DataFrame.from_records(
        records, columns=["model", *REPLICATE_COLUMNS, "seed"]
    ).astype({"round": int, "pool_percent": int, "seed": int})
    twice = index[index.duplicated(["group", "seed"], keep=False)]
    if not twice.empty:
        raise ValueError(
            f"models {twice['model'].tolist()} are the same replicate (group "
            f"{twice['group'].iloc[0]!r}, seed {twice['seed'].iloc[0]}): the run's seed keeps "
            "the plain name"
        )
    return index


def has_replicates(index: pd.DataFrame) -> bool:
    """Whether any group has two or more seeds."""
    return bool((index.groupby("group")["seed"].nunique() >= 2).any())


def group_targets(summary: pd.DataFrame, index: pd.DataFrame) -> dict[str, str]:
    """Each group's headline target: for a conditioned group the in-range target with the highest
    mean over its seeds of the mean achieved (reward-model) reward, the higher target on a tie
    (`summary.best_targets` on those means); `none` for a baseline. All seeds of a group are
    compared at this one target."""
    rows = summary.merge(index[["model", "group"]], left_on="method", right_on="model")
    means = rows.groupby(["group", "target_name"], sort=False, as_index=False).agg(
        achieved_reward_mean=("achieved_reward_mean", "mean"),
        target_reward=("target_reward", "first"),
        in_range=("in_range", "first"),
    )
    return best_targets(means.rename(columns={"group": "method"}))


#: One seed's figure: its per-prompt values (a mean) or (statistic of prompt positions, prompts).
Figure = np.ndarray | tuple[Callable[[np.ndarray], float], int]


def _mean_statistic(per_prompt: pd.Series) -> np.ndarray:
    return per_prompt.to_numpy(dtype=np.float64)


def _prompts(figure: Figure) -> int:
    return figure.size if isinstance(figure, np.ndarray) else figure[1]


def _bootstrap(figures: list[Figure], settings: BootstrapSettings) -> tuple[float, float, float]:
    """The mean over seeds of `figures` with its hierarchical interval: the vectorised path for
    means (`stats.hierarchical_mean_bootstrap`), else `stats.hierarchical_bootstrap`."""
    boot = {"n_resamples": settings.n_resamples, "level": settings.level, "seed": settings.seed}
    if all(isinstance(figure, np.ndarray) for figure in figures):
        return hierarchical_mean_bootstrap(figures, **boot)
    return hierarchical_bootstrap(figures, **boot)


def _spearman_statistic(rows: pd.DataFrame, column: str):
    """Pooled Spearman(target, `column`) on resampled prompts; NaN throughout when it is
    undefined on all prompts (`comparisons.spearman_note`: the same score at every target
    within each prompt gives exactly 0 by design, not by the method)."""
    rows = rows.dropna(subset=[column])
    n_defined = spearman_per_prompt(rows, "target_reward", column)[1]
    if spearman_note(rows, column, n_defined).startswith("undefined"):
        return (lambda index: float("nan")), rows["post_id"].nunique()
    prompts = rows.groupby("post_id").indices
    positions = list(prompts.values())
    target, value = rows["target_reward"].to_numpy(), rows[column].to_numpy()

    def statistic(index: np.ndarray) -> float:
        take = np.concatenate([positions[i] for i in index])
        return spearman(target[take], value[take])

    return statistic, len(positions)


def _figures(frame: pd.DataFrame, kl: pd.DataFrame | None, judge: HeldOutJudge | None):
    """(metric, target_name, model, (statistic, n_prompts)) for every figure of every model."""
    means = {"achieved_reward": "reward"}
    if judge is not None:
        means[judge.metric] = judge.row_column
    for model, rows in frame.groupby("method", sort=False):
        for target_name, part in rows.groupby("target_name", sort=False):
            for metric, column in means.items():
                per_prompt = part.groupby("post_id")[column].mean().dropna()
                yield metric, target_name, model, _mean_statistic(per_prompt)
            if kl is not None:
                kls = kl[(kl["method"] == model) & (kl["target_name"] == target_name)]
                per_prompt = kls.groupby("post_id")["kl"].mean()
                yield "kl_sft", target_name, model, _mean_statistic(per_prompt)
        in_range = rows[rows["in_range"].fillna(False)]
        if in_range["target_reward"].nunique() >= 2:
            spearmans = {"spearman_pooled": "reward"}
            if judge is not None:
                spearmans[f"{judge_spearman(judge)}_pooled"] = judge.row_column
            for metric, column in spearmans.items():
                yield metric, IN_RANGE, model, _spearman_statistic(in_range, column)


def _seed_figure(
    metric: str,
    model: str,
    figure: Figure,
    correlation: pd.DataFrame | None,
    settings: BootstrapSettings,
) -> tuple[float, float, float]:
    """One model's figure and its prompt-bootstrap interval; a Spearman (`*_pooled`) from
    `correlation` when it has the model."""
    if metric.endswith("_pooled") and correlation is not None:
        row = correlation[correlation["method"] == model]
        if not row.empty:
            return tuple(
                float(row[f"{metric}{end}"].iloc[0]) for end in ("", "_ci_low", "_ci_high")
            )
    return _bootstrap([figure], settings)


def replicate_tables(
    frame: pd.DataFrame,
    settings: BootstrapSettings,
    judge: HeldOutJudge | None = None,
    kl: pd.DataFrame | None = None,
    correlation: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(replicates, seeds) from `combine`'s frame (with `attach_judges`' columns when `judge`)
    and the `kl` rules' per-prompt rows (or None: no `kl_sft`). With `correlation` (the
    correlation table, `comparisons.correlations`) each model's own Spearman figures and
    intervals are taken from it, not drawn again: one figure per model in every table.

    Metrics: `achieved_reward` (RM), the main judge's `judge.metric` (its score, or an llm
    judge's win rate against the reference), `kl_sft` (nats per sequence) per condition, each the
    mean over prompts of the per-prompt mean; and over the in-range targets (`target_name`
    `in_range`) the pooled Spearman(target, RM) `spearman_pooled` and Spearman(target, judge)
    (`comparisons.judge_spearman(judge)` + `_pooled`).

    seeds: one row per model x condition x metric: the group's columns, seed, model,
    target_name, target_reward, in_range, metric, value and its prompt-bootstrap interval,
    n_prompts. replicates: one row per group x condition x metric: n_seeds, seeds (", "-joined),
    the mean over seeds with its hierarchical interval (`stats.hierarchical_bootstrap`; with one
    seed, the prompt bootstrap) and seed_sd (the seeds' values' SD, NaN with one seed).
    Both are seeded by `settings.seed`.
    """
    index = replicate_index(frame["method"].unique(), settings.seed).set_index("model")
    targets = frame.drop_duplicates("target_name").set_index("target_name")
    seed_records, groups = [], {}
    for metric, target_name, model, group in _figures(frame, kl, judge):
        replicate = index.loc[model]
        value, low, high = _seed_figure(metric, model, group, correlation, settings)
        pooled = target_name == IN_RANGE
        where = {
            **{column: replicate[column] for column in REPLICATE_COLUMNS},
            "target_name": target_name,
            "target_reward": np.nan if pooled else targets.loc[target_name, "target_reward"],
            "in_range": pd.NA if pooled else targets.loc[target_name, "in_range"],
            "metric": metric,
        }
        seed_records.append(
            {**where, "seed": replicate["seed"], "model": model, "value": value, "ci_low": low,
             "ci_high": high, "n_prompts": _prompts(group)}
        )  # fmt: skip
        groups.setdefault((replicate["group"], target_name, metric), (where, []))[1].append(
            (replicate["seed"], group, (value, low, high))
        )
    records = []
    for where, members in groups.values():
        members.sort(key=lambda member: member[0])
        values = [member[2][0] for member in members]
        # One seed: its own interval (the same draw `_bootstrap` would make again).
        mean, low, high = (
            members[0][2] if len(members) == 1 else _bootstrap([m[1] for m in members], settings)
        )
        records.append(
            {**where, "n_seeds": len(members), "seeds": ", ".join(str(m[0]) for m in members),
             "mean": mean, "ci_low": low, "ci_high": high,
             "seed_sd": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan}
        )  # fmt: skip
    head = [*REPLICATE_COLUMNS, "target_name", "target_reward", "in_range", "metric"]
    replicates = pd.DataFrame.from_records(
        records, columns=[*head, "n_seeds", "seeds", "mean", "ci_low", "ci_high", "seed_sd"]
    )
    seeds = pd.DataFrame.from_records(
        seed_records, columns=[*head, "seed", "model", "value", "ci_low", "ci_high", "n_prompts"]
    )
    return replicates, seeds.sort_values(["group", "seed"], kind="stable", ignore_index=True)


def _partners(index: pd.DataFrame, group: str, other: str) -> list[tuple[int, str, str]]:
    """(seed, model of `group`, model of `other`) paired by seed; when `other` has one replicate
    only and no seed in common, every seed of `group` is paired with it."""
    mine = index[index["group"] == group].set_index("seed")["model"]
    theirs = index[index["group"] == other].set_index("seed")["model"]
    shared = sorted(set(mine.index) & set(theirs.index))
    if shared:
        return [(seed, mine[seed], theirs[seed]) for seed in shared]
    if len(theirs) == 1:
        return [(seed, mine[seed], theirs.iloc[0]) for seed in sorted(mine.index)]
    return []


def replicate_comparisons(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    settings: BootstrapSettings,
    main_method: str | None,
    judge: HeldOutJudge | None = None,
    extra_pairs: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """The main method's group (`main_method`, round 1 on the whole pool) against every other
    group, at each group's headline target (`group_targets`), on the verdict's per-condition
    metrics (`comparisons.compared_metrics` but the Spearman): per seed the paired difference
    over the prompts both models share (`main-s<k>` minus `other-s<k>`; an `other` with a single
    replicate is paired with every seed), their mean over seeds with a hierarchical interval
    (seeds, then prompts within each seed; `stats.hierarchical_bootstrap`), how many seeds are
    ahead (difference > 0) and behind (< 0), and each seed's difference.

    `significant`: the interval excludes 0; `consistent`: every seed's difference has the sign
    of the mean; `called`: both with two or more seeds, `significant` with one. No main method,
    or none among the groups, gives no main-method rows. `extra_pairs`: more (group, other)
    comparisons, rows after the main method's (e.g. `scalar-f10` against `tokens-f10`, the
    efficiency question); a pair whose group is missing is left out."""
    columns = ["metric", "method", "target_name", "other", "other_target_name", "n_seeds",
               "seeds", "difference", "ci_low", "ci_high", "n_ahead", "n_behind",
               "seed_differences", "significant", "consistent", "called"]  # fmt: skip
    index = replicate_index(frame["method"].unique(), settings.seed)
    groups = list(index["group"].unique())
    compared = [(main_method, other) for other in groups if other != main_method]
    if main_method is None or main_method not in groups:
        compared = []
    compared += [(a, b) for a, b in extra_pairs if a in groups and b in groups]
    if not compared:
        return pd.DataFrame(columns=columns)
    chosen = group_targets(summary, index)
    records = []
    for metric, (row_column, _, _) in compared_metrics(judge).items():
        if metric == "spearman_pooled":
            continue
        for group, other in compared:
            pairs = _partners(index, group, other)
            if not pairs:
                continue
            per_seed = []
            for _, model, partner in pairs:
                a, b = (
                    frame[(frame["method"] == m) & (frame["target_name"] == chosen[g])]
                    .groupby("post_id")[row_column]
                    .mean()
                    .dropna()
                    for m, g in ((model, group), (partner, other))
                )
                shared = a.index.intersection(b.index)
                per_seed.append(_mean_statistic(a.loc[shared] - b.loc[shared]))
            difference, low, high = _bootstrap(per_seed, settings)
            own = [float(values.mean()) for values in per_seed]
            ahead, behind = sum(d > 0 for d in own), sum(d < 0 for d in own)
            significant = bool(low > 0 or high < 0)
            consistent = ahead == len(own) or behind == len(own)
            records.append(
                {"metric": metric, "method": group, "target_name": chosen[group],
                 "other": other, "other_target_name": chosen[other], "n_seeds": len(pairs),
                 "seeds": ", ".join(str(seed) for seed, _, _ in pairs),
                 "difference": difference, "ci_low": low, "ci_high": high, "n_ahead": ahead,
                 "n_behind": behind, "seed_differences": ", ".join(f"{d:+.3f}" for d in own),
                 "significant": significant, "consistent": consistent,
                 "called": significant and (consistent or len(pairs) < 2)}
            )  # fmt: skip
    return pd.DataFrame.from_records(records, columns=columns)

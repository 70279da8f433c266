"""The statistics behind every interval and test of the evaluation: bootstrap intervals that
resample prompts, rank correlations and paired differences.

Pure numpy/pandas/scipy; nothing here knows about methods, models or files. Prompts are the unit
drawn at random, so the intervals resample prompts (a cluster bootstrap): several generations of
one prompt are not independent. The intervals are percentile bootstrap intervals (Efron and
Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

#: The fewest prompts a figure must rest on to be ranked (crowned in the verdict, led in
#: `compare_methods`); for a Spearman(target, achieved), the prompts on which the achieved reward
#: varies with the target. The intervals resample prompts, and 4 prompts allow only 35 distinct
#: resamples, too few to place a 2.5% tail.
MIN_PROMPTS = 5


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are drawn: resamples, confidence level, and the seed of the run."""

    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval at `level` (e.g. 0.95: the 2.5% and 97.5% quantiles) of bootstrap
    `samples` of a statistic.

    A statistic can be undefined on some resamples (NaN: a Spearman of a resample whose targets
    or scores are all equal). Those resamples are left out, and a warning says how many, as long
    as they are at most (1 - level) / 2 of all: no more than one tail. With more, the interval
    is (NaN, NaN): the undefined resamples could be a whole tail, so no interval at `level` can
    be placed. No samples at all also give (NaN, NaN).
    """
    samples = np.asarray(samples, dtype=np.float64)
    undefined = int((~np.isfinite(samples)).sum())
    alpha = (1.0 - level) / 2.0
    if undefined:
        placed = undefined <= alpha * samples.size
        log.warning(
            "%d of %d bootstrap resamples have no value (NaN); %s",
            undefined,
            samples.size,
            "left out of the interval"
            if placed
            else f"more than (1 - level) / 2 = {alpha:g} of them: the interval is NaN",
        )
        if not placed:
            return float("nan"), float("nan")
        samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float],
    groups: Sequence | None = None,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`.

    With `groups` (e.g. post ids) whole groups are resampled (a cluster bootstrap), so several
    generations of one prompt count as one draw; the statistic is still the mean over rows.
    NaN values are an error (drop them first and say so); an empty input gives (NaN, NaN).
    """
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("bootstrap_ci: values contain NaN")
    if values.size == 0:
        return float("nan"), float("nan")
    if groups is None:
        sums, counts = values, np.ones_like(values)
    else:
        codes, _ = pd.factorize(pd.Series(list(groups)))
        sums = np.bincount(codes, weights=values)
        counts = np.bincount(codes).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n_resamples, len(sums)))
    samples = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return percentile_interval(samples, level)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 2 values."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    # Pearson correlation of average ranks (what scipy's spearmanr computes, 50x faster here,
    # which matters inside a bootstrap loop).
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def spearman_per_prompt(frame: pd.DataFrame, x: str, y: str) -> tuple[float, int]:
    """Mean over prompts of Spearman(x, y) within each prompt, and how many prompts entered it.

    A prompt whose x or y is constant has no rank correlation and is left out (the count says
    how many remained).
    """
    per_prompt = [spearman(group[x], group[y]) for _, group in frame.groupby("post_id", sort=False)]
    defined = [value for value in per_prompt if np.isfinite(value)]
    return (float(np.mean(defined)) if defined else float("nan")), len(defined)


def prompt_bootstrap(
    statistic: Callable[..., float],
    frames: Sequence[pd.DataFrame],
    columns: Sequence[str],
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic(*frames)` when the prompts shared by all frames are
    resampled with replacement (the same draw for every frame, i.e. paired).

    Inside the loop each resampled frame is a dict of numpy arrays holding `columns` (the ones
    `statistic` reads), which keeps a thousand resamples fast.
    """
    shared = set.intersection(*(set(frame["post_id"]) for frame in frames))
    post_ids = np.array(sorted(shared))
    if post_ids.size == 0:
        return float("nan"), float("nan")
    arrays = [{column: frame[column].to_numpy() for column in columns} for frame in frames]
    rows = [frame.groupby("post_id").indices for frame in frames]
    rng = np.random.default_rng(seed)
    samples = np.empty(n_resamples)
    for i in range(n_resamples):
        drawn = post_ids[rng.integers(0, post_ids.size, size=post_ids.size)]
        resampled = []
        for array, index in zip(arrays, rows, strict=True):
            take = np.concatenate([index[post_id] for post_id in drawn])
            resampled.append({column: values[take] for column, values in array.items()})
        samples[i] = statistic(*resampled)
    return percentile_interval(samples, level)


def paired_difference(
    a: pd.Series,
    b: pd.Series,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """Mean of a - b over the prompts both series hold (indexed by post_id), with a paired
    bootstrap interval; returns (difference, low, high, n_prompts)."""
    a, b = a.dropna(), b.dropna()
    shared = a.index.intersection(b.index)
    differences = (a.loc[shared] - b.loc[shared]).to_numpy(dtype=np.float64)
    if differences.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    low, high = bootstrap_ci(differences, n_resamples=n_resamples, level=level, seed=seed)
    return float(differences.mean()), low, high, int(differences.size)


def hierarchical_bootstrap(
    groups: Sequence[tuple[Callable[[np.ndarray], float], int]],
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean over replicates (training seeds) of a per-replicate statistic, with a two-level
    (hierarchical) percentile bootstrap interval: each resample draws the replicates with
    replacement, then, within each drawn replicate independently, its prompts with replacement
    (Davison and Hinkley 1997, *Bootstrap Methods and their Application*, §3.8, resampling
    both stages of a two-stage sample). The interval so includes the seed-to-seed variance; with
    one replicate it is the prompt bootstrap of that replicate.

    `groups`: one (statistic, n_prompts) per replicate; `statistic(index)` is the replicate's
    figure on the prompts at positions `index` (an int array, with repeats), e.g.
    `lambda index: per_prompt[index].mean()`. Returns (estimate, low, high): the estimate is the
    mean over replicates of `statistic` on all its prompts. No replicates, one without prompts,
    or an estimate that is NaN (a replicate's statistic undefined) gives NaN for all three.
    Seeded by `seed` (the run's).
    """
    if not groups or any(n < 1 for _, n in groups):
        return float("nan"), float("nan"), float("nan")
    estimate = float(np.mean([statistic(np.arange(n)) for statistic, n in groups]))
    if np.isnan(estimate):
        return estimate, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = np.empty(n_resamples)
    for i in range(n_resamples):
        drawn = rng.integers(0, len(groups), size=len(groups))
        values = []
        for j in drawn:
            statistic, n = groups[j]
            values.append(statistic(rng.integers(0, n, size=n)))
        samples[i] = np.mean(values)
    low, high = percentile_interval(samples, level)
    return estimate, low, high


def hierarchical_mean_bootstrap(
    replicates: Sequence[np.ndarray],
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """`hierarchical_bootstrap` of a mean, vectorised: `replicates` holds one array of per-prompt
    values per replicate (seed); the estimate is the mean over replicates of each one's mean, and
    each resample draws the replicates, then the prompts within each drawn one (Davison and
    Hinkley 1997, §3.8). Same definitions and NaN rules as `hierarchical_bootstrap` (a NaN value
    makes the estimate NaN: drop NaN first), another random stream.
    """
    arrays = [np.asarray(values, dtype=np.float64) for values in replicates]
    if not arrays or any(values.size < 1 for values in arrays):
        return float("nan"), float("nan"), float("nan")
    estimate = float(np.mean([values.mean() for values in arrays]))
    if np.isnan(estimate):
        return estimate, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(arrays), size=(n_resamples, len(arrays)))
    means = np.empty(drawn.shape)
    for j, values in enumerate(arrays):
        slots = drawn == j
        prompts = rng.integers(0, values.size, size=(int(slots.sum()), values.size))
        means[slots] = values[prompts].mean(axis=1)
    low, high = percentile_interval(means.mean(axis=1), level)
    return estimate, low, high

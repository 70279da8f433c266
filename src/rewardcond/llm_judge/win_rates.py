"""Win rates of judged summaries: the mean verdict and the length-controlled win rate (after
AlpacaEval 2), each with a prompt-bootstrap interval (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rewardcond.llm_judge.protocol import GROUP_COLUMNS
from rewardcond.stats import BootstrapSettings, bootstrap_ci, prompt_bootstrap


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def fit_fractional_logit(
    x: Sequence[float], y: Sequence[float], l2: float = 1.0, *, max_iter: int = 100
) -> tuple[float, float]:
    """(intercept, slope) maximising sum y log p + (1 - y) log(1 - p) - l2/2 slope^2 with
    p = sigmoid(intercept + slope x), for outcomes y in [0, 1] (fractional logit). Newton's
    method with step halving; the intercept is not penalised. Raises ValueError when all y are
    0 or all are 1 (the intercept is infinite) or when it does not converge."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"x and y must be two 1-d arrays of one non-zero length: {x.shape}, {y.shape}"
        )
    mean = y.mean()
    if mean <= 0.0 or mean >= 1.0:
        raise ValueError(f"all outcomes are {mean:g}: the intercept is infinite")
    design = np.column_stack([np.ones_like(x), x])
    penalty = np.diag([0.0, l2])

    def objective(beta):
        eta = design @ beta
        # log p = -log(1 + e^-eta), log(1 - p) = -log(1 + e^eta)
        return (
            -(y * np.logaddexp(0.0, -eta) + (1.0 - y) * np.logaddexp(0.0, eta)).sum()
            - 0.5 * l2 * beta[1] ** 2
        )

    beta = np.array([np.log(mean / (1.0 - mean)), 0.0])
    value = objective(beta)
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (y - p) - penalty @ beta
        hessian = (design.T * (p * (1.0 - p))) @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while objective(beta + scale * step) < value - 1e-12 and scale > 1e-8:
            scale /= 2.0
        beta = beta + scale * step
        new_value = objective(beta)
        if np.max(np.abs(scale * step)) < 1e-10 or abs(new_value - value) < 1e-12 * max(
            1.0, abs(value)
        ):
            return float(beta[0]), float(beta[1])
        value = new_value
    raise ValueError(f"the fractional logit did not converge in {max_iter} iterations")


def length_feature(length_differences: Sequence[float]) -> np.ndarray:
    """AlpacaEval's length feature tanh(d / sd(d)) (sd with ddof 1); zeros when sd is 0."""
    d = np.asarray(length_differences, dtype=np.float64)
    sd = d.std(ddof=1) if d.size > 1 else 0.0
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def length_controlled_win_rate(
    verdicts: Sequence[float], length_differences: Sequence[float], l2: float = 1.0
) -> float:
    """Win rate predicted at zero length difference by the fractional logit of the verdicts
    (1, 0.5, 0) on `length_feature(length_differences)`; the mean verdict when all verdicts are
    equal (0 or 1 exactly); NaN for no verdicts."""
    y = np.asarray(verdicts, dtype=np.float64)
    if y.size == 0:
        return float("nan")
    if y.min() == y.max() and y[0] in (0.0, 1.0):
        return float(y[0])
    intercept, _ = fit_fractional_logit(length_feature(length_differences), y, l2)
    return float(_sigmoid(intercept))


def win_rate_table(
    verdicts: pd.DataFrame, bootstrap: BootstrapSettings, l2: float = 1.0
) -> pd.DataFrame:
    """One row per (method, target_name) of the verdicts table: counts, win rate and
    length-controlled win rate with prompt-bootstrap intervals, and the share of disagreeing
    orders (over rows judged in both orders, identical pairs excluded)."""
    rows = []
    for (method, target), group in verdicts.groupby(list(GROUP_COLUMNS), sort=False):
        judged = group[~group["malformed"]]
        asked = judged[~judged["identical"]]
        values = judged["verdict"].to_numpy(dtype=np.float64)
        posts = judged["post_id"].to_numpy()
        row = {
            "method": method,
            "target_name": target,
            "n_rows": len(group),
            "n_judged": len(judged),
            "n_malformed": int(group["malformed"].sum()),
            "n_identical": int(group["identical"].sum()),
            "n_wins": int((values == 1.0).sum()),
            "n_ties": int((values == 0.5).sum()),
            "n_losses": int((values == 0.0).sum()),
            "n_disagreements": int(asked["disagree"].sum()),
            "disagreement_share": float(asked["disagree"].mean()) if len(asked) else np.nan,
            "mean_length_difference": float(judged["length_difference"].mean())
            if len(judged)
            else np.nan,
            "win_rate": float(values.mean()) if values.size else np.nan,
        }
        row["win_rate_low"], row["win_rate_high"] = bootstrap_ci(
            values,
            posts,
            n_resamples=bootstrap.n_resamples,
            level=bootstrap.level,
            seed=bootstrap.seed,
        )
        row["lc_win_rate"] = length_controlled_win_rate(values, judged["length_difference"], l2)
        row["lc_win_rate_low"], row["lc_win_rate_high"] = prompt_bootstrap(
            lambda drawn: length_controlled_win_rate(
                drawn["verdict"], drawn["length_difference"], l2
            ),
            [judged],
            ["verdict", "length_difference"],
            n_resamples=bootstrap.n_resamples,
            level=bootstrap.level,
            seed=bootstrap.seed,
        )
        rows.append(row)
    return pd.DataFrame(rows)

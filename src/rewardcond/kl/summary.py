"""The per-method KL summary (mean and bootstrap interval over prompts per condition), in nats per
sequence; light (numpy and pandas only), so that `publish` reads the `kl` rules' files without
torch (see `rewardcond.kl`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rewardcond.stats import bootstrap_ci


def summarize_kl(
    table: pd.DataFrame, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean per-prompt KL per method and condition, with a percentile bootstrap interval over
    prompts (`rewardcond.evaluation.bootstrap_ci`), in nats per sequence.

    Returns columns method, target_name, target_reward, estimator, kl, kl_low, kl_high,
    kl_bound, n_prompts, n_unsupported. A condition with an infinite per-prompt KL (a sample sft
    cannot emit) has kl = inf and no interval (NaN), rather than one that leaves it out.
    """

    rows = []
    for (method, name), group in table.groupby(["method", "target_name"], sort=False):
        values = group["kl"].to_numpy(dtype=np.float64)
        if np.isfinite(values).all():
            mean = float(values.mean())
            low, high = bootstrap_ci(values, n_resamples=n_resamples, level=level, seed=seed)
        else:
            mean, low, high = math.inf, math.nan, math.nan
        rows.append(
            {
                "method": method,
                "target_name": name,
                "target_reward": float(group["target_reward"].iloc[0]),
                "estimator": group["estimator"].iloc[0],
                "kl": mean,
                "kl_low": low,
                "kl_high": high,
                "kl_bound": float(group["kl_bound"].iloc[0]),
                "n_prompts": len(group),
                "n_unsupported": int(group["n_unsupported"].sum()),
            }
        )
    return pd.DataFrame(rows)

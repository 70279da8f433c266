"""The statistics behind every interval (rewardcond.stats): cluster bootstrap, paired resampling,
the level of the intervals, Spearman, and resamples on which a statistic is undefined."""

import logging
import math

import numpy as np
import pandas as pd
import pytest

from rewardcond.stats import (
    bootstrap_ci,
    paired_difference,
    percentile_interval,
    prompt_bootstrap,
    spearman,
    spearman_per_prompt,
)


def test_bootstrap_ci_contains_mean_and_is_seeded():
    values = np.random.default_rng(1).normal(3.0, 1.0, size=200)
    low, high = bootstrap_ci(values, n_resamples=500, seed=7)
    assert low < values.mean() < high
    assert 0.1 < high - low < 0.5  # about 2 x 1.96 x 1 / sqrt(200) = 0.28
    assert bootstrap_ci(values, n_resamples=500, seed=7) == (low, high)
    assert bootstrap_ci(values, n_resamples=500, seed=8) != (low, high)


def test_bootstrap_ci_resamples_whole_groups():
    # Two prompts, each repeated 50 times: resampling prompts gives only 3 possible means.
    values = np.array([0.0] * 50 + [1.0] * 50)
    groups = ["a"] * 50 + ["b"] * 50
    low, high = bootstrap_ci(values, groups, n_resamples=400, seed=0)
    assert (low, high) == (0.0, 1.0)
    row_low, row_high = bootstrap_ci(values, n_resamples=400, seed=0)
    assert 0.3 < row_low < 0.5 < row_high < 0.7
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, np.nan])


def test_spearman_pooled_and_per_prompt_on_a_known_case():
    frame = pd.DataFrame(
        {
            "post_id": ["A"] * 3 + ["B"] * 3 + ["C"] * 3,
            "target": [1, 2, 3] * 3,
            "achieved": [1, 2, 3, 4, 6, 5, 7, 7, 7],
        }
    )
    two = frame[frame["post_id"] != "C"]
    # Ranks: x (1.5, 3.5, 5.5) twice, y 1..6 -> 6 / sqrt(16 x 17.5).
    assert spearman(two["target"], two["achieved"]) == pytest.approx(6 / math.sqrt(280))
    mean, n_prompts = spearman_per_prompt(frame, "target", "achieved")
    assert (mean, n_prompts) == (pytest.approx((1.0 + 0.5) / 2), 2)  # C is constant: left out
    assert math.isnan(spearman([1, 1], [1, 2]))


def test_paired_difference_uses_shared_prompts():
    a = pd.Series([1.0, 2.0, 3.0, 9.0], index=["p1", "p2", "p3", "only_a"])
    b = pd.Series([0.5, 1.5, 2.5], index=["p1", "p2", "p3"])
    difference, low, high, n_prompts = paired_difference(a, b, n_resamples=200)
    assert (difference, low, high, n_prompts) == (0.5, 0.5, 0.5, 3)


def two_methods(n_prompts=40, rows_per_prompt=3):
    """Frames of two methods on the same prompts: b is a plus 1 on every row, and a varies a lot
    between prompts, so that a paired difference is exactly -1 and an unpaired one is not."""
    rng = np.random.default_rng(0)
    post_ids = np.repeat([f"p{i}" for i in range(n_prompts)], rows_per_prompt)
    values = np.repeat(rng.normal(0.0, 10.0, n_prompts), rows_per_prompt)
    a = pd.DataFrame({"post_id": post_ids, "v": values})
    return a, a.assign(v=a["v"] + 1.0)


def mean_difference(a, b):
    return float(a["v"].mean() - b["v"].mean())


def test_prompt_bootstrap_draws_the_same_prompts_for_every_frame():
    a, b = two_methods()
    # Shuffled rows: the pairing is by prompt, not by row position.
    b = b.sample(frac=1.0, random_state=1).reset_index(drop=True)
    low, high = prompt_bootstrap(mean_difference, [a, b], ["v"], n_resamples=300, seed=0)
    assert (low, high) == (pytest.approx(-1.0, abs=1e-9), pytest.approx(-1.0, abs=1e-9))
    # Resampled independently the two means would move apart by several units.
    single_low, single_high = prompt_bootstrap(
        lambda x: float(x["v"].mean()), [a], ["v"], n_resamples=300, seed=0
    )
    assert single_high - single_low > 3.0


def test_prompt_bootstrap_uses_only_the_prompts_every_frame_holds():
    a, b = two_methods()
    extra = pd.DataFrame({"post_id": ["only_a"] * 3, "v": [1e6] * 3})
    low, high = prompt_bootstrap(
        mean_difference, [pd.concat([a, extra]), b], ["v"], n_resamples=100, seed=0
    )
    assert (low, high) == (pytest.approx(-1.0, abs=1e-9), pytest.approx(-1.0, abs=1e-9))


@pytest.mark.parametrize("function", ["bootstrap_ci", "prompt_bootstrap", "paired_difference"])
def test_every_interval_has_the_level_it_is_asked_for(function):
    a, b = two_methods()
    b = b.assign(v=b["v"] + np.random.default_rng(2).normal(0.0, 1.0, len(b)))

    def interval(level):
        if function == "bootstrap_ci":
            return bootstrap_ci(a["v"], a["post_id"], n_resamples=2000, level=level, seed=0)
        if function == "prompt_bootstrap":
            return prompt_bootstrap(
                mean_difference, [a, b], ["v"], n_resamples=2000, level=level, seed=0
            )
        means = [frame.groupby("post_id")["v"].mean() for frame in (a, b)]
        return paired_difference(*means, n_resamples=2000, level=level, seed=0)[1:3]

    wide, middle, narrow = interval(0.95), interval(0.8), interval(0.5)
    assert wide[0] < middle[0] < narrow[0] < narrow[1] < middle[1] < wide[1]


def test_percentile_interval_is_the_quantiles_at_the_level():
    samples = np.arange(1001, dtype=float)  # quantile q is 1000 q exactly
    assert percentile_interval(samples, 0.95) == pytest.approx((25.0, 975.0), abs=1e-9)
    assert percentile_interval(samples, 0.5) == pytest.approx((250.0, 750.0), abs=1e-9)


def test_undefined_resamples_are_counted_and_too_many_give_no_interval(caplog):
    samples = np.arange(1000, dtype=float)
    few = samples.copy()
    few[:25] = np.nan  # 2.5%: at most one tail at level 0.95
    with caplog.at_level(logging.WARNING, logger="rewardcond.stats"):
        low, high = percentile_interval(few, 0.95)
    assert (low, high) == pytest.approx(np.quantile(samples[25:], [0.025, 0.975]), abs=1e-9)
    assert "25 of 1000 bootstrap resamples have no value (NaN); left out" in caplog.text
    many = samples.copy()
    many[:26] = np.nan
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rewardcond.stats"):
        assert np.isnan(percentile_interval(many, 0.95)).all()
    assert "26 of 1000 bootstrap resamples have no value (NaN); more than" in caplog.text
    assert "the interval is NaN" in caplog.text
    # At level 0.5 a quarter of the resamples may be undefined.
    assert np.isfinite(percentile_interval(many, 0.5)).all()


def test_a_spearman_undefined_on_most_resamples_has_no_interval():
    # Two prompts, one with a rising and one with a flat score: a resample of the flat prompt
    # alone (a quarter of them) has a constant score, so no Spearman.
    frame = pd.DataFrame(
        {
            "post_id": ["a", "a", "b", "b"],
            "target_reward": [0.0, 1.0, 0.0, 1.0],
            "reward": [0.0, 1.0, 5.0, 5.0],
        }
    )

    def statistic(rows):
        return spearman(rows["target_reward"], rows["reward"])

    interval = prompt_bootstrap(statistic, [frame], ["target_reward", "reward"], seed=0)
    assert np.isnan(interval).all()

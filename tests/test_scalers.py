import numpy as np
import pytest

from rewardcond.scalers import RewardScaler, load_scaler, make_scaler

REWARDS = np.array([-2.0, 0.0, 1.0, 1.0, 4.0])


def test_identity_leaves_values_unchanged():
    scaler = make_scaler("identity").fit(REWARDS)
    assert scaler.transform([3.5, -1.0]).tolist() == [3.5, -1.0]


def test_standardize_gives_zero_mean_unit_std_on_training_rewards():
    scaled = make_scaler("standardize").fit(REWARDS).transform(REWARDS)
    assert scaled.mean() == pytest.approx(0.0, abs=1e-12)
    assert scaled.std() == pytest.approx(1.0)


def test_minmax_maps_training_range_to_unit_interval_and_extrapolates():
    scaler = make_scaler("minmax").fit(REWARDS)
    assert scaler.transform([-2.0, 1.0, 4.0, 10.0]).tolist() == [0.0, 0.5, 1.0, 2.0]


def test_quantile_is_the_rank_inside_and_keeps_increasing_outside():
    scaler = make_scaler("quantile").fit([0.0, 1.0, 2.0, 3.0, 4.0])
    assert scaler.transform([0.0, 1.0, 2.0, 4.0]) == pytest.approx([0.0, 0.25, 0.5, 1.0])
    # Beyond the training range: linear with slope 1 / (max - min), so above-max targets differ.
    assert scaler.transform([6.0, -1.0]) == pytest.approx([1.5, -0.25])


def test_quantile_handles_ties_and_stays_monotone():
    rewards = np.r_[np.linspace(-1.0, 0.0, 25), np.full(50, 0.5), np.linspace(1.0, 2.0, 25)]
    scaler = make_scaler("quantile").fit(rewards)
    grid = np.linspace(-3.0, 4.0, 701)
    assert np.all(np.diff(scaler.transform(grid)) > 0)
    # Half the mass sits at 0.5: the tie gets its mean rank; the ends map to 0 and 1.
    assert scaler.transform([-1.0, 0.5, 2.0]) == pytest.approx([0.0, 0.5, 1.0], abs=1e-3)


@pytest.mark.parametrize("kind", ["identity", "standardize", "minmax", "quantile"])
def test_round_trip_through_dict_and_json(kind, tmp_path):
    scaler = make_scaler(kind).fit(REWARDS)
    assert RewardScaler.from_dict(scaler.to_dict()) == scaler
    scaler.save(tmp_path / "scaler.json")
    loaded = load_scaler(tmp_path / "scaler.json")
    values = np.array([-5.0, 0.3, 2.0, 9.0])
    assert np.array_equal(loaded.transform(values), scaler.transform(values))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="kind must be one of"):
        make_scaler("zscore")
    with pytest.raises(ValueError, match="rewards must be finite"):
        make_scaler("standardize").fit([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="at least two distinct"):
        make_scaler("minmax").fit([1.0, 1.0])
    with pytest.raises(ValueError, match="not fitted"):
        make_scaler("quantile").transform([1.0])
    with pytest.raises(ValueError, match="values must be finite"):
        make_scaler("standardize").fit(REWARDS).transform([np.inf])

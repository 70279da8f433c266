"""`bon<N>`: keep the best scored of N candidates per prompt."""

import numpy as np
import pytest

from rewardcond.methods.bon import pick_best


def test_pick_best_is_argmax_per_group_of_n():
    scores = np.array([0.1, 0.9, 0.3, -1.0, -2.0, -0.5, 4.0, 4.0, 1.0])
    assert pick_best(scores, 3).tolist() == [1, 5, 6]
    assert pick_best(scores, 1).tolist() == list(range(9))


def test_pick_best_refuses_ragged_groups_and_nan():
    with pytest.raises(ValueError, match=r"groups of n=4 scores, got shape \(9,\)"):
        pick_best(np.zeros(9), 4)
    with pytest.raises(ValueError, match="1 candidate scores are NaN"):
        pick_best(np.array([0.0, np.nan]), 2)

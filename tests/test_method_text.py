"""`text`: the reward as a line of digits in front of the prompt."""

import pytest

from rewardcond.methods.text import reward_line


@pytest.mark.parametrize(
    ("scaled", "precision", "line"),
    [
        (1.25, 2, "REWARD: 1.25\n"),
        (1.0, 2, "REWARD: 1.00\n"),
        (-0.4567, 2, "REWARD: -0.46\n"),
        (2.0, 0, "REWARD: 2\n"),
        (0.123456, 3, "REWARD: 0.123\n"),
        (-0.001, 2, "REWARD: 0.00\n"),
        (-0.4, 0, "REWARD: 0\n"),
    ],
)
def test_reward_line_fixed_precision(scaled, precision, line):
    assert reward_line(scaled, precision) == line

"""Model names with variant suffixes (rewardcond.modules.ModelName, issues 18-19)."""

import pytest

from rewardcond.modules import ModelName


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("scalar", ("scalar", 1, 100, None)),
        ("bon16", ("bon16", 1, 100, None)),
        ("scalar-r3", ("scalar", 3, 100, None)),
        ("tokens-f10", ("tokens", 1, 10, None)),
        ("text-s0", ("text", 1, 100, 0)),
        ("scalar-r2-f30-s7", ("scalar", 2, 30, 7)),
    ],
)
def test_model_name_round_trips(name, parts):
    parsed = ModelName.parse(name)
    assert (parsed.method, parsed.round, parsed.percent, parsed.seed) == parts
    assert str(parsed) == name


@pytest.mark.parametrize(
    "name", ["scalar-r1", "scalar-f100", "scalar-f0", "scalar-s01", "scalar-s7-r2", "Scalar"]
)
def test_model_name_rejects_non_canonical_names(name):
    with pytest.raises(ValueError, match=f"model name {name!r} is not <method>"):
        ModelName.parse(name)

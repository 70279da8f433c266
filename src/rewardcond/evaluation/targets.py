"""The target rewards of `targets.json` as the evaluation reads them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rewardcond.tables import NO_TARGET

#: `target_name` of a pooled figure over a method's in-range targets (comparisons table).
IN_RANGE = "in_range"


@dataclass(frozen=True)
class Target:
    """One requested reward: its name (`q50`, `max+1sd`...), raw value, and whether it lies
    inside the training reward range."""

    name: str
    value: float
    in_range: bool


def load_targets(path: str | os.PathLike) -> list[Target]:
    """Read targets.json (a list of `{"name", "value", "in_range"}` objects)."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of targets")
    targets = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "value", "in_range"} <= entry.keys():
            raise ValueError(
                f"{path}: entry {index} is {entry!r}; expected an object with keys "
                "name (str), value (float), in_range (bool)"
            )
        targets.append(Target(str(entry["name"]), float(entry["value"]), bool(entry["in_range"])))
    names = [target.name for target in targets]
    if len(set(names)) != len(names) or NO_TARGET in names:
        raise ValueError(f"{path}: target names must be unique and not {NO_TARGET!r}: {names}")
    return targets

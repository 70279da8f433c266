"""What every training/generation method provides, and the registry that finds one by name.

A method is one value of the workflow's `{method}` wildcard. It decides which scored rows it
learns from, how a row becomes a (prompt, completion, target reward) example, how its model is
built from a base folder and loaded back, and which conditions it generates under. Training and
generation loops live in `rewardcond.train` and `rewardcond.generate` and call these hooks, so a
new method is one new module in this package that subclasses `Method` and registers itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

_REGISTRY: dict[str, type[Method]] = {}


@dataclass(frozen=True)
class Example:
    """One training example: the text the model sees first, the text it learns, its condition."""

    prompt: str
    completion: str
    target_reward: float | None = None


@dataclass(frozen=True)
class Condition:
    """One generation pass: its name in the output table, its raw target reward (NaN for none),
    and the text put in front of the rendered prompt (e.g. a control token)."""

    name: str
    target_reward: float = math.nan
    prefix: str = ""


NO_TARGET = Condition("none")


class Method:
    """Base class of a method. Subclasses set `name`, and override the hooks they need.

    Options come from the config's `method_options.<name>` mapping and are passed to `__init__`
    as keyword arguments; a subclass declares the ones it accepts as parameters, so that an unknown
    option is a `TypeError` that names it.
    """

    name: ClassVar[str]
    #: True when the model is trained on, and generates at, target rewards (one pass per target).
    conditioned: ClassVar[bool] = False
    #: Which completion sources it learns from (None: those the `trainset.sources` key lists).
    sources: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"method {self.name!r} takes no options, got {sorted(options)}")

    def options(self) -> dict[str, Any]:
        """The resolved options (recorded in manifests)."""
        return {}

    def label_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Add the method's own columns to the filtered training rows (default: none)."""
        return rows

    def example(self, row: Any) -> Example:
        """The training example of one trainset row (a namedtuple from `itertuples`)."""
        return Example(row.prompt, row.completion, float(row.reward) if self.conditioned else None)

    def build_model(self, base_path: str, trainset: pd.DataFrame):
        """(model, tokenizer) to fine-tune, built from the base folder `data/models/<name>/`."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return AutoModelForCausalLM.from_pretrained(base_path), AutoTokenizer.from_pretrained(
            base_path
        )

    def load_model(self, model_path: str):
        """(model, tokenizer) of a model this method trained and saved to `model_path`."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return AutoModelForCausalLM.from_pretrained(model_path), AutoTokenizer.from_pretrained(
            model_path
        )

    def conditions(self, targets: list[dict]) -> list[Condition]:
        """The generation passes for the targets of `targets.json` (baselines: one, no target)."""
        if self.conditioned:
            return [Condition(t["name"], float(t["value"])) for t in targets]
        return [NO_TARGET]


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a `Method` subclass available under its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of every registered method, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """The method registered as `name`, built with its config options."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; registered methods: {available_methods()}")
    return _REGISTRY[name](**(options or {}))

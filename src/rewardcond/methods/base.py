"""What every training/generation method provides, and the registry that finds one by name.

A method is one value of the workflow's `{method}` wildcard. It decides which scored rows it
learns from, how a row becomes a (prompt, completion, target reward) example, how its model is
built from a base folder and loaded back, and which conditions it generates under. Training and
generation loops live in `rewardcond.train` and `rewardcond.summaries` and call these hooks, so
a new method is one new module in this package that subclasses `Method` and registers itself.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from rewardcond.modules import NOT_METHODS, method_module, model_method
from rewardcond.tables import NO_TARGET as NO_TARGET_NAME

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


#: The one pass of a method without target rewards (a baseline).
NO_TARGET = Condition(NO_TARGET_NAME)


class Method:
    """Base class of a method. Subclasses set `name`, and override the hooks they need.

    Options come from the config's `method_options.<name>` mapping and are passed to `__init__`
    as keyword arguments; a subclass declares the ones it accepts as parameters, so that an unknown
    option is a `TypeError` that names it.
    """

    name: ClassVar[str]
    #: A family of names (e.g. `bon(?P<n>...)`): each named group of a matching name becomes an
    #: option, and `name` is how the family is listed (`bon<N>`).
    name_pattern: ClassVar[str | None] = None
    #: True when the model is trained on, and generates at, target rewards (one pass per target).
    conditioned: ClassVar[bool] = False
    #: Which completion sources it learns from (None: those the `trainset.sources` key lists).
    sources: ClassVar[tuple[str, ...] | None] = None
    #: False when neither its training rows nor their labels use the reward model's scores: its
    #: trainset is then built from the unscored completions, so that its training need not wait
    #: for the reward model (the trainset rule's `completions` input).
    learns_from_scores: ClassVar[bool] = True
    #: True when it learns from (prompt, chosen, rejected) pairs of the train comparisons
    #: (`pair_rows`, `pair_trainer`) instead of (prompt, completion) examples.
    learns_from_pairs: ClassVar[bool] = False
    #: True when generation needs the reward model (`complete` gets a scorer).
    needs_scorer: ClassVar[bool] = False
    #: True when it trains online against the reward model (`online_trainer` gets a scorer)
    #: from prompt rows instead of (prompt, completion) examples.
    trains_online: ClassVar[bool] = False
    #: Logged training metrics kept in loss.csv next to the loss (TRL's names).
    logged_metrics: ClassVar[tuple[str, ...]] = ()
    #: Summaries generated per summary kept (best-of-N: N); recorded as `n_candidates`.
    n_candidates: int = 1

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
        """(model, tokenizer) of a model this method trained and saved to `model_path`, through
        the Auto classes, with this package's models registered with them."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        import rewardcond.modeling  # noqa: F401 - registers RewardConditionedLM

        return AutoModelForCausalLM.from_pretrained(model_path), AutoTokenizer.from_pretrained(
            model_path
        )

    def conditions(self, targets: list[dict]) -> list[Condition]:
        """The generation passes for the targets of `targets.json` (baselines: one, no target)."""
        if self.conditioned:
            return [Condition(t["name"], float(t["value"])) for t in targets]
        return [NO_TARGET]

    def pair_rows(
        self, rows: pd.DataFrame, comparisons: pd.DataFrame, *, tokenizer, template
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        """(training pairs, counts of what was skipped and why) from the filtered rows and the
        train comparisons; `tokenizer` (the base's) and `template` (a `PromptTemplate`) serve to
        re-render prompts. Only methods with `learns_from_pairs` implement it."""
        raise NotImplementedError(f"method {self.name!r} does not learn from pairs")

    def pair_trainer(self, model, tokenizer, pairs: pd.DataFrame, *, base_path, args, callbacks):
        """The Trainer of a method with `learns_from_pairs`; `args` holds `TrainingArguments`
        keyword arguments, `base_path` the folder the model was built from."""
        raise NotImplementedError(f"method {self.name!r} does not learn from pairs")

    def online_trainer(self, model, tokenizer, prompts: pd.DataFrame, *, args, callbacks, scorer):
        """The Trainer of a method with `trains_online`: `prompts` are its training rows,
        `args` holds `TrainingArguments` keyword arguments, `scorer` is the reward model (a
        `rewardcond.reward_models.scoring.RewardModelScorer`)."""
        raise NotImplementedError(f"method {self.name!r} does not train online")

    def complete(
        self, model, tokenizer, prompts, target_rewards, *, posts, generation, seed, scorer=None
    ):
        """One `Completion` per prompt. `generation` holds `complete()` keyword arguments;
        `posts` (template fields of each prompt's post) and `scorer` serve best-of-N."""
        from rewardcond.decoding import complete

        return complete(model, tokenizer, prompts, target_rewards, seed=seed, **generation)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a `Method` subclass available under its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of every method of the package (a family as its pattern, e.g. `bon<N>`) and of any
    other registered one, sorted. Imports every method module."""
    package = Path(__file__).parent
    for module in pkgutil.iter_modules([str(package)]):
        if module.name not in NOT_METHODS:
            importlib.import_module(f"{__package__}.{module.name}")
    return sorted(_REGISTRY)


def get_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """The method registered as `name`, or of the family whose pattern `name` matches, built
    with its config options. A method not yet registered is looked for in its module
    (`rewardcond.modules.method_module`), which is imported; no other method's module is.

    A model name with variant suffixes (`rewardcond.modules.ModelName`: an online round
    `<method>-r<round>`, a pool percent `-f<p>`, a replicate seed `-s<k>`) gives `<method>` named
    so (its `name`, written into generation tables, is the model's name).

    Raises:
        KeyError: naming `name` and the methods there are, when no method has that name.
    """
    options = dict(options or {})
    full_name, name = name, model_method(name)
    found = _registered(name)
    if found is None:
        try:
            module = method_module(name)
        except KeyError:
            module = None
        if module is not None:
            importlib.import_module(f"{__package__}.{module}")
            found = _registered(name)
    if found is None:
        raise KeyError(f"unknown method {name!r}; registered methods: {available_methods()}")
    cls, from_name = found
    clash = sorted(set(from_name) & set(options))
    if clash:
        raise TypeError(f"method {name!r} sets {clash} by its name; drop it from options")
    method = cls(**from_name, **options)
    if full_name != name:
        method.name = full_name
    return method


def _registered(name: str) -> tuple[type[Method], dict[str, str]] | None:
    """The registered class of `name` and the options its name sets (a family's groups)."""
    if name in _REGISTRY and _REGISTRY[name].name_pattern is None:
        return _REGISTRY[name], {}
    for cls in _REGISTRY.values():
        match = cls.name_pattern and re.fullmatch(cls.name_pattern, name)
        if match:
            return cls, match.groupdict()
    return None

"""The workflow's config checked against its JSON schema, every mistake named by its key path.

`workflow/schemas/config.schema.yaml` is the one source of the config's keys, types, bounds and
defaults. `validate_config` fills the defaults in place, exactly as Snakemake's
`snakemake.utils.validate(config, schema, set_default=True)` does, and raises one `ConfigError`
that lists every mistake as `key.path: what is wrong`: an unknown (e.g. misspelt) key names the
keys allowed there, since every object of the schema rejects keys it does not declare.

`workflow/rules/common.smk` loads this file by its path at every Snakemake start, so it imports
only the standard library, jsonschema and yaml (importing the `rewardcond` package would load
torch, seconds per dry run).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

#: Keywords that reject undeclared keys; their errors become one "unknown key" line per key.
_CLOSED = ("additionalProperties", "unevaluatedProperties")


class ConfigError(ValueError):
    """The config does not match the schema; `errors` holds one `key.path: problem` per mistake."""

    def __init__(self, message: str, errors: Sequence[str]):
        super().__init__(message)
        self.errors = list(errors)


def load_schema(path: str | os.PathLike) -> dict:
    """The schema file (YAML or JSON) as a dict."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def key_path(path: Iterable[str | int]) -> str:
    """A config location as written in the docs: `train.overrides.sft.learning_rate`,
    `data.files[2]`; the top level is `(top level)`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _filling_validator() -> type:
    """Draft 2020-12 with Snakemake's default filling: before an object is checked against a
    `properties` keyword, every declared key it lacks is set to that key's `default` (a copy)."""
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": fill_then_check})


def _resolve(root: dict, ref: str) -> dict:
    """The subschema a local `$ref` ("#/$defs/name") points to."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported here, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _declared_keys(schema: dict, root: dict) -> set[str]:
    """Keys an object schema declares: its `properties`, and those of its `$ref` and `allOf`."""
    keys = set(schema.get("properties", {}))
    if "$ref" in schema:
        keys |= _declared_keys(_resolve(root, schema["$ref"]), root)
    for part in schema.get("allOf", ()):
        keys |= _declared_keys(part, root)
    return keys


def _key_paths(schema: dict, root: dict, prefix: tuple = ()) -> dict[str, str]:
    """{key path: key} of every key declared under named `properties` (not under a per-name
    mapping such as `base_models.<name>`), for suggestions across sections."""
    paths = {}
    for key in _declared_keys(schema, root):
        path = (*prefix, key)
        paths[key_path(path)] = key
        subschema = _property_schema(schema, key, root)
        if subschema is not None:
            paths |= _key_paths(subschema, root, path)
    return paths


def _property_schema(schema: dict, key: str, root: dict) -> dict | None:
    """The subschema of `key` in an object schema, looked up as `_declared_keys` does."""
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    parts = [_resolve(root, schema["$ref"])] if "$ref" in schema else []
    for part in [*parts, *schema.get("allOf", ())]:
        found = _property_schema(part, key, root)
        if found is not None:
            return found
    return None


def _suggestion(key: str, allowed: set[str], root: dict, top_level: bool) -> str:
    """A close key at the same level; for a top-level key, else the closest key paths of the
    sections (the shallowest of equally close ones: train.x, not train.overrides.sft.x)."""
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if not top_level:
        return ""
    scored = [
        (difflib.SequenceMatcher(None, key, name).ratio(), -path.count("."), path)
        for path, name in _key_paths(root, root).items()
    ]
    scored = [item for item in scored if item[0] >= 0.6]  # get_close_matches' cutoff
    if not scored:
        return ""
    best = max(scored)[:2]
    paths = sorted(path for ratio, depth, path in scored if (ratio, depth) == best)
    return f" (did you mean {' or '.join(paths[:3])}?)"


def _unknown_key_messages(error, root: dict) -> list[tuple[list, str]]:
    """(key path, line) per key that the object at `error`'s path does not declare."""
    path = list(error.absolute_path)
    allowed = _declared_keys(error.schema, root)
    patterns = list(error.schema.get("patternProperties", {}))
    unknown = [
        key
        for key in error.instance
        if key not in allowed and not any(re.search(pattern, key) for pattern in patterns)
    ]
    if not unknown:  # a case the walk above does not model: keep jsonschema's own words
        return [(path, f"{key_path(path)}: {error.message}")]
    where = key_path(path) if path else "the top level"
    takes = f"keys allowed in {where}: {', '.join(sorted(allowed)) or 'none'}"
    return [
        (
            [*path, key],
            f"{key_path([*path, key])}: unknown key"
            f"{_suggestion(str(key), allowed, root, top_level=not path)}; {takes}",
        )
        for key in unknown
    ]


def config_errors(config: dict, schema: dict) -> list[str]:
    """Every mismatch between `config` and `schema`, as `key.path: problem` lines sorted by path.

    Fills the schema's defaults into `config` in place on the way (see `_filling_validator`).
    """
    found = []
    for error in _filling_validator()(schema).iter_errors(config):
        if error.validator in _CLOSED and error.validator_value is False:
            found += _unknown_key_messages(error, schema)
        else:
            found.append(
                (list(error.absolute_path), f"{key_path(error.absolute_path)}: {error.message}")
            )
    found.sort(key=lambda item: [str(part) for part in item[0]])
    lines = list(dict.fromkeys(line for _, line in found))  # a section's type and its $ref's agree
    return lines or judge_errors(config) + variant_errors(config)


def judge_errors(config: dict) -> list[str]:
    """What the schema cannot check about `evaluate.judges` (issue 17), one line per mistake:
    names unique (they name the columns `judge_<name>`); kind gold only with data.source
    synthetic (only that world has a gold function); `evaluate.main_judge` one of the names (null
    without judges); no reward_model judge that is the run's own pretrained reward model (the
    proxy at the same revision), as a judge must be one the policy never saw."""
    evaluate = config.get("evaluate", {})
    judges = evaluate.get("judges") or []
    errors = []
    first: dict[str, int] = {}
    for index, judge in enumerate(judges):
        where = key_path(["evaluate", "judges", index])
        name = judge["name"]
        if name in first:
            errors.append(
                f"{where}.name: {name!r} is already the name of evaluate.judges[{first[name]}]; "
                "names must be unique (each names the column judge_<name>)"
            )
        first.setdefault(name, index)
        source = config.get("data", {}).get("source")
        if judge["kind"] == "gold" and source != "synthetic":
            errors.append(
                f"{where}.kind: gold is the synthetic world's gold function and needs "
                f"data.source: synthetic; data.source is {source!r} (use a reward_model or llm "
                "judge on real data)"
            )
        proxy = config.get("reward_model", {})
        pretrained = proxy.get("pretrained") or {}
        if (
            judge["kind"] == "reward_model"
            and proxy.get("kind") == "pretrained"
            and (judge["hub_id"], judge["revision"])
            == (pretrained.get("hub_id"), pretrained.get("revision"))
        ):
            errors.append(
                f"{where}: {judge['hub_id']}@{judge['revision']} is the run's own reward model "
                "(reward_model.pretrained, the proxy the methods were conditioned on or optimised "
                "against); a judge must be a model the policy never saw"
            )
    main = evaluate.get("main_judge")
    if judges and main not in first:
        errors.append(
            f"evaluate.main_judge: {main!r} is not the name of a judge; expected one of "
            f"{sorted(first)} (evaluate.judges)"
        )
    if not judges and main is not None:
        errors.append(f"evaluate.main_judge: {main!r} names a judge, but evaluate.judges is empty")
    return errors


def variant_errors(config: dict) -> list[str]:
    """What the schema cannot check about the model variants of issue 19: online rounds
    (train.rounds >= 2) do not combine with replicate seeds (train.seeds) or pool percents
    (train.pool_percents) yet; a round's pool and start would have to follow its variant."""
    train = config.get("train", {})
    seeds = [seed for seed in train.get("seeds") or [] if seed != config.get("seed")]
    percents = [percent for percent in train.get("pool_percents") or [100] if percent != 100]
    if train.get("rounds", 1) > 1 and (seeds or percents):
        keys = " and ".join(
            key for key, used in (("train.seeds", seeds), ("train.pool_percents", percents)) if used
        )
        return [
            f"train.rounds: {train['rounds']} (online rounds) cannot be combined with {keys} "
            "(replicate seeds, pool percents) in one run; run the rounds in a config of their "
            "own (workflow/config/rounds.yaml) or set train.rounds: 1"
        ]
    return []


def validate_config(
    config: dict, schema_path: str | os.PathLike, sources: Sequence[str] = ()
) -> dict:
    """Check `config` against the schema file, fill its defaults in place, and return it.

    `sources` names where the config came from (the config files, in merge order), for the
    message. Raises `ConfigError` listing every mistake, each by its key path.
    """
    errors = config_errors(config, load_schema(schema_path))
    if errors:
        origin = f" (merged from {', '.join(map(str, sources))})" if sources else ""
        raise ConfigError(
            f"the config{origin} does not match {schema_path}; see workflow/config/README.md:\n"
            + "\n".join(f"  {line}" for line in errors),
            errors,
        )
    return config

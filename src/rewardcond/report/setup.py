"""The REPORT's Setup section: what the run used (base models, reward model, machine), its data
sizes and the time of each stage (Snakemake benchmark files)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rewardcond.evaluation.summary import read_benchmark_seconds
from rewardcond.modules import split_round

REWARD_MODEL_NOTE = "the run's trained reward model (`reward_model/model/manifest.json`)"


def training_seconds(benchmarks: str | os.PathLike, methods: Sequence[str]) -> dict[str, float]:
    """Training seconds per method from `benchmarks/train/{method}.tsv`, where present. An
    online round's model `<method>-r<r>` (issue 18) costs its method's training plus, for each
    round 2..r, the round's sampling and scoring (`online_round`) and training (`train_round`);
    it is left out when any of those files is missing."""
    seconds = {}
    for method in methods:
        base, last = split_round(method)
        paths = [Path(benchmarks) / "train" / f"{base}.tsv"]
        for round_number in range(2, last + 1):
            paths += [
                Path(benchmarks) / rule / f"{base}-r{round_number}.tsv"
                for rule in ("online_round", "train_round")
            ]
        if all(path.exists() for path in paths):
            seconds[method] = sum(read_benchmark_seconds(path) for path in paths)
    return seconds


def online_costs(
    round_reports: Sequence[str | os.PathLike], methods: Sequence[str], samples=None
) -> dict[str, dict[str, float]]:
    """{model name: {"samples", "tokens"}}: the summaries that each model's training sampled
    from its own policies, and their tokens, summed over its rounds from the online rounds'
    reports (`trainsets/<method>-r<r>.json`, `rewardcond.rounds.run_round`): `<method>-r<r>`
    counts rounds 2..r, a method of `methods` trained offline 0. `samples` ({method: count},
    e.g. rloo's steps x summaries per step) sets a method's count; its tokens are unknown
    (NaN)."""
    reports = [json.loads(Path(path).read_text()) for path in round_reports]
    costs = {method: {"samples": 0, "tokens": 0} for method in methods}
    for method, count in (samples or {}).items():
        costs[method] = {"samples": count, "tokens": float("nan")}
    for report in reports:
        for name, cost in costs.items():
            base, last = split_round(name)
            if base == report["method"] and 2 <= report["round"] <= last:
                cost["samples"] += report["samples"]
                cost["tokens"] += report["sampled_tokens"]
    return costs


def stage_times(benchmarks: str | os.PathLike) -> pd.DataFrame:
    """Every Snakemake benchmark file under `benchmarks/`: rule, job, seconds, max RSS (MB)."""
    records = []
    root = Path(benchmarks)
    for path in sorted(root.glob("**/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        relative = path.relative_to(root).with_suffix("")
        records.append(
            {
                "rule": relative.parts[0],
                "job": "/".join(relative.parts[1:]) or relative.parts[0],
                "seconds": float(table["s"].mean()) if "s" in table else float("nan"),
                "max_rss_mb": float(table["max_rss"].mean()) if "max_rss" in table else np.nan,
            }
        )
    return pd.DataFrame.from_records(records, columns=["rule", "job", "seconds", "max_rss_mb"])


def data_sizes(files: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """Rows of each named Parquet file, split by its `split` column where it has one."""
    records = []
    for name, path in files.items():
        frame = pd.read_parquet(path)
        record = {"data": name, "rows": len(frame)}
        if "split" in frame.columns:
            counts = frame["split"].fillna("(none)").value_counts().sort_index()
            record["by_split"] = ", ".join(f"{split}: {count}" for split, count in counts.items())
        else:
            record["by_split"] = ""
        records.append(record)
    return pd.DataFrame.from_records(records, columns=["data", "rows", "by_split"])


def used_base_models(setup: Mapping) -> list[str]:
    """The names of `base_models:` the run used: `train.base_model` and each configured method's
    `train.overrides.<method>.base_model`, and `reward_model.train.base` when the run trains its
    reward model; every configured one when the setup has no `train` section to tell."""
    base_models = setup.get("base_models")
    names = list(base_models) if isinstance(base_models, Mapping) else []
    train = setup.get("train")
    if not isinstance(train, Mapping):
        return names
    used = {train.get("base_model")}
    overrides = train.get("overrides") or {}
    for method in setup.get("methods") or []:
        used.add((overrides.get(method) or {}).get("base_model"))
    reward_model = setup.get("reward_model")
    if isinstance(reward_model, Mapping) and reward_model.get("kind") == "train":
        used.add((reward_model.get("train") or {}).get("base"))
    return [name for name in names if name in used]


def models_line(setup: Mapping) -> str:
    """The base models the run used (`used_base_models`) in one line: each name with its scalar
    settings (hub id, revision, sizes); the full specs are in the resolved configuration."""
    base_models = setup.get("base_models")
    if not isinstance(base_models, Mapping) or not base_models:
        return "see the resolved configuration below"
    described = []
    for name in used_base_models(setup):
        spec = base_models[name]
        settings = spec.items() if isinstance(spec, Mapping) else []
        scalars = [f"{key}={value}" for key, value in settings if isinstance(value, str | int)]
        described.append(f"`{name}` ({', '.join(scalars)})" if scalars else f"`{name}`")
    return "base models " + "; ".join(described) + f"; reward model: {reward_model_line(setup)}"


def reward_model_line(setup: Mapping) -> str:
    """The reward model the run scored with: the pinned hub model (`reward_model.kind:
    pretrained`) or the one trained in the run."""
    section = setup.get("reward_model")
    if isinstance(section, Mapping) and section.get("kind") == "pretrained":
        pretrained = section.get("pretrained", {})
        return f"pretrained `{pretrained.get('hub_id')}` at revision {pretrained.get('revision')}"
    return REWARD_MODEL_NOTE


def hardware() -> str:
    """The machine that ran the publishing step: CPU count, platform and CUDA device if any."""
    import torch

    description = f"{platform.platform()}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        description += f", CUDA: {torch.cuda.get_device_name(0)}"
    return description + f"; torch {torch.__version__}"

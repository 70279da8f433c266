"""The published tables from every method's evaluated rows: `combine` them, then `summarize`
(method x target), `best_targets` (each method's headline target) and `win_rates` (methods at
their headline target, with cost)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rewardcond.evaluation.judged import judge_summary, mean_ci
from rewardcond.evaluation.metrics import ROUGE_TYPES, distinct_n, is_empty, win_indicator
from rewardcond.evaluation.targets import Target
from rewardcond.modules import ModelName
from rewardcond.stats import BootstrapSettings
from rewardcond.tables import GENERATION_COLUMNS, NO_TARGET, require_columns


def combine(
    evaluated: Sequence[pd.DataFrame], references: pd.DataFrame, targets: Sequence[Target]
) -> pd.DataFrame:
    """All methods' evaluated rows in one frame, with `in_range`, `conditioned` and the win
    indicators against the reference summary (`win_rm`, `win_gold`).

    Checks that each frame holds one method of its own, that every target name is in
    targets.json with the same value, that each method is either conditioned (all rows with a
    target) or a baseline (all `none`), and that every prompt has a reference.
    """
    frame = pd.concat(evaluated, ignore_index=True)
    require_columns(frame, (*GENERATION_COLUMNS, "reward", "gold", *ROUGE_TYPES), "evaluated")
    methods = [sorted(set(part["method"])) for part in evaluated]
    flat = [method for names in methods for method in names]
    if any(len(names) != 1 for names in methods) or len(set(flat)) != len(flat):
        raise ValueError(f"evaluated: expected one distinct method per file, found {methods}")
    require_columns(references, ("post_id", "reward", "gold"), "evaluated/references")
    in_range = {target.name: target.in_range for target in targets}
    unknown = sorted(set(frame["target_name"]) - set(in_range) - {NO_TARGET})
    if unknown:
        raise ValueError(f"evaluated: target_name {unknown} not in targets.json {list(in_range)}")
    values = frame["target_name"].map({target.name: target.value for target in targets})
    conditioned = frame["target_name"] != NO_TARGET
    disagree = conditioned & ~np.isclose(frame["target_reward"], values.astype(float))
    if disagree.any():
        first = frame.loc[disagree].iloc[0]
        raise ValueError(
            f"evaluated: {int(disagree.sum())} rows have a target_reward other than targets.json "
            f"gives for their target_name (first: method {first['method']!r}, "
            f"{first['target_name']!r} = {first['target_reward']} vs {values[disagree].iloc[0]})"
        )
    frame["conditioned"] = conditioned
    mixed = frame.groupby("method")["conditioned"].nunique()
    if (mixed > 1).any():
        raise ValueError(
            f"evaluated: methods {mixed[mixed > 1].index.tolist()} mix rows with and without a "
            f"target ({NO_TARGET!r}); a method is either conditioned or a baseline"
        )
    frame["in_range"] = frame["target_name"].map(in_range).astype("boolean")
    reference = references.set_index("post_id")
    missing = sorted(set(frame["post_id"]) - set(reference.index))
    if missing:
        raise ValueError(f"evaluated/references: no reference score for post_id {missing[:5]}")
    frame["reference_reward"] = reference.loc[frame["post_id"], "reward"].to_numpy()
    frame["reference_gold"] = reference.loc[frame["post_id"], "gold"].to_numpy()
    frame["win_rm"] = win_indicator(frame["reward"], frame["reference_reward"])
    frame["win_gold"] = win_indicator(frame["gold"], frame["reference_gold"])
    return frame


def _groups(frame: pd.DataFrame, targets: Sequence[Target]):
    """(method, target_name, rows) in method order of appearance, then targets.json order."""
    order = {target.name: i for i, target in enumerate(targets)}
    for method in frame["method"].unique():
        rows = frame[frame["method"] == method]
        names = sorted(rows["target_name"].unique(), key=lambda name: order.get(name, -1))
        for name in names:
            yield method, name, rows[rows["target_name"] == name]


#: The columns of a model name's variant (`variant_columns`), after `method` in every table.
VARIANT_COLUMNS = ("seed", "pool_percent")


def variant_columns(table: pd.DataFrame, run_seed: int) -> pd.DataFrame:
    """`table` with `seed` and `pool_percent` inserted after its `method` column (a model name,
    `rewardcond.modules.ModelName`, issue 19): the training seed (`-s<k>`, else `run_seed`) and
    the percent of its training pool it was trained on (`-f<p>`, else 100).

    Raises:
        ValueError: naming the name, when a `method` is no model name.
    """
    names = [ModelName.parse(method) for method in table["method"]]
    table = table.copy()
    at = table.columns.get_loc("method") + 1
    seeds = [run_seed if name.seed is None else name.seed for name in names]
    table.insert(at, "seed", pd.array(seeds, dtype="Int64"))
    table.insert(at + 1, "pool_percent", pd.array([name.percent for name in names], dtype="Int64"))
    return table


def summarize(
    frame: pd.DataFrame,
    targets: Sequence[Target],
    settings: BootstrapSettings,
    judges: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per method x target (baselines: one row, target `none`), from `combine`'s frame;
    `method` is the model name, with its `seed` and `pool_percent` (`variant_columns`, the run's
    seed being `settings.seed`).

    Means with cluster-bootstrap intervals for achieved (RM) and gold reward (an empty summary,
    counted in `n_empty`, has no RM score and is left out of the RM mean and win rate); ROUGE,
    length in tokens, EOS rate, distinct-1/2, win rates against the reference, and the
    generation cost (`generated_tokens_per_prompt` = mean of n_tokens x n_candidates, since
    best-of-N generates N candidates for each kept summary). With `judges` ({name: kind}, the
    frame from `judged.attach_judges`) also each judge's columns (`judged.judge_summary`).
    """
    values = {target.name: target.value for target in targets}
    records = []
    for method, name, rows in _groups(frame, targets):
        achieved = mean_ci(rows, "reward", settings)
        gold = mean_ci(rows, "gold", settings)
        win_rm = mean_ci(rows, "win_rm", settings)
        win_gold = mean_ci(rows, "win_gold", settings)
        records.append(
            {
                "method": method,
                "target_name": name,
                "target_reward": values.get(name, float("nan")),
                "in_range": rows["in_range"].iloc[0],
                "n": len(rows),
                "n_prompts": rows["post_id"].nunique(),
                "n_empty": int(is_empty(rows["text"]).sum()),
                "achieved_reward_mean": achieved[0],
                "achieved_reward_ci_low": achieved[1],
                "achieved_reward_ci_high": achieved[2],
                "gold_reward_mean": gold[0],
                "gold_reward_ci_low": gold[1],
                "gold_reward_ci_high": gold[2],
                **{key: rows[key].mean() for key in ROUGE_TYPES},
                "length_mean": rows["n_tokens"].mean(),
                "eos_rate": rows["finished"].astype(float).mean(),
                "distinct1": distinct_n(rows["text"].tolist(), 1),
                "distinct2": distinct_n(rows["text"].tolist(), 2),
                "winrate_rm": win_rm[0],
                "winrate_rm_ci_low": win_rm[1],
                "winrate_rm_ci_high": win_rm[2],
                "winrate_gold": win_gold[0],
                "winrate_gold_ci_low": win_gold[1],
                "winrate_gold_ci_high": win_gold[2],
                "generated_tokens_per_prompt": (rows["n_tokens"] * rows["n_candidates"]).mean(),
                "n_candidates": int(rows["n_candidates"].max()),
                **judge_summary(rows, judges or {}, settings),
            }
        )
    summary = pd.DataFrame.from_records(records)
    summary["in_range"] = summary["in_range"].astype("boolean")
    return variant_columns(summary, settings.seed)


def best_targets(summary: pd.DataFrame) -> dict[str, str]:
    """Each method's headline target: for a conditioned method the in-range target with the
    highest mean achieved (reward-model) reward, the higher target on a tie; `none` for a
    baseline. Chosen by the proxy a practitioner can see, never by gold."""
    chosen = {}
    for method, rows in summary.groupby("method", sort=False):
        if (rows["target_name"] == NO_TARGET).all():
            chosen[method] = NO_TARGET
            continue
        candidates = rows[rows["in_range"].fillna(False)]
        if candidates.empty:
            raise ValueError(f"method {method!r} has no generations at an in-range target")
        ranked = candidates.sort_values(
            ["achieved_reward_mean", "target_reward"], ascending=False, kind="stable"
        )
        chosen[method] = ranked["target_name"].iloc[0]
    return chosen


def win_rates(
    summary: pd.DataFrame,
    train_seconds: dict[str, float] | None = None,
    online_costs: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """One row per method at its headline target (`best_targets`): win rates against the
    reference summary under the reward model and under gold with their intervals, the means
    they go with, each judge's columns (`judge_<name>_*`, where the summary has them), the KL
    from sft (`kl_*` columns, where the summary has them) and the cost columns (training
    seconds, generated tokens per prompt, N).

    With `online_costs` (a run with online rounds, issue 18: {model name: {"samples",
    "sampled_tokens"}}, `rewardcond.report.setup.online_costs`) also `round` (1 for a method,
    r for `<method>-r<r>`), `online_samples` and `online_sampled_tokens`: the summaries the
    model's training sampled from its own policies and their tokens, over all its rounds (0 for
    a method trained offline; NaN where not known)."""
    chosen = best_targets(summary)
    rows = pd.concat(
        [
            summary[(summary["method"] == method) & (summary["target_name"] == name)]
            for method, name in chosen.items()
        ],
        ignore_index=True,
    )
    table = rows[
        [
            "method",
            *VARIANT_COLUMNS,
            "target_name",
            "target_reward",
            "n",
            "n_prompts",
            "achieved_reward_mean",
            "gold_reward_mean",
            "gold_reward_ci_low",
            "gold_reward_ci_high",
            "winrate_rm",
            "winrate_rm_ci_low",
            "winrate_rm_ci_high",
            "winrate_gold",
            "winrate_gold_ci_low",
            "winrate_gold_ci_high",
        ]
    ].copy()
    kl = [column for column in rows.columns if column.startswith("kl_")]
    judged = [column for column in rows.columns if column.startswith("judge_")]
    table[judged] = rows[judged]  # each judge's columns (`judged.judge_summary`), if any
    table[kl] = rows[kl]  # the KL columns of `frontier.attach_kl`, when the summary has them
    seconds = train_seconds or {}
    table["train_seconds"] = [seconds.get(method, float("nan")) for method in table["method"]]
    table["generated_tokens_per_prompt"] = rows["generated_tokens_per_prompt"]
    table["n_candidates"] = rows["n_candidates"]
    if online_costs is not None:
        table["round"] = [ModelName.parse(method).round for method in table["method"]]
        for column, key in (("online_samples", "samples"), ("online_sampled_tokens", "tokens")):
            table[column] = [
                online_costs.get(method, {}).get(key, float("nan")) for method in table["method"]
            ]
    return table


def read_benchmark_seconds(path: str | os.PathLike) -> float:
    """Wall seconds in a Snakemake benchmark file (column `s`; the mean over repeats)."""
    table = pd.read_csv(path, sep="\t")
    require_columns(table, ["s"], str(path))
    return float(table["s"].mean())

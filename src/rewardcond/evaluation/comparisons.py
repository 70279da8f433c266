"""Calibration and comparisons between methods: Spearman(target, achieved) per conditioned method
(`correlations`), which figures may be ranked (`rankable`), and paired bootstrap differences of
the leader and of the main method against every other method (`compare_methods`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from rewardcond.evaluation.judged import HeldOutJudge, win_column
from rewardcond.evaluation.summary import best_targets, variant_columns, win_rates
from rewardcond.evaluation.targets import IN_RANGE
from rewardcond.judges import judge_column
from rewardcond.stats import (
    MIN_PROMPTS,
    BootstrapSettings,
    paired_difference,
    prompt_bootstrap,
    spearman,
    spearman_per_prompt,
)


def _pooled(column: str) -> Callable[[Mapping], float]:
    def statistic(rows: Mapping) -> float:
        return spearman(rows["target_reward"], rows[column])

    return statistic


def spearman_note(
    rows: pd.DataFrame, column: str, n_defined: int, scores: str | None = None
) -> str:
    """Why the Spearman(target, `column`) of a method's in-range `rows` is undefined (NaN) or not
    ranked, or "" when it is neither. `n_defined`: prompts with a per-prompt correlation.

    A method that writes the same summary at every target gets the same reward at every target
    within each prompt; pooled over prompts its Spearman is then exactly 0, in every bootstrap
    resample too, a figure of the design, not of the method: it is undefined, as a correlation
    with a constant is. `scores`: what `column` holds, for the note (default: gold reward for
    `gold`, else reward-model score).
    """
    if scores is None:
        scores = "gold reward" if column == "gold" else "reward-model score"
    if rows.empty:
        return f"undefined: no {scores}s"
    if rows["target_reward"].nunique() < 2:
        return "undefined: fewer than 2 in-range targets"
    if n_defined == 0:
        return (
            f"undefined: the {scores} is the same at every target within each of its "
            f"{rows['post_id'].nunique()} prompts"
        )
    if n_defined < MIN_PROMPTS:
        return (
            f"not ranked: the {scores} varies with the target on {n_defined} prompts "
            f"(fewer than {MIN_PROMPTS})"
        )
    return ""


def judge_spearman(judge: HeldOutJudge) -> str:
    """The stem of the correlation table's columns of the held-out `judge`:
    `spearman_judge_<name>` (its score) or `spearman_judge_<name>_winrate` (an llm judge's
    verdict against the reference)."""
    return f"spearman_{judge_column(judge.name) if judge.scores else judge.winrate}"


def correlations(
    frame: pd.DataFrame, settings: BootstrapSettings, judge: HeldOutJudge | None = None
) -> pd.DataFrame:
    """One row per conditioned model (`method`, with its `seed` and `pool_percent`,
    `summary.variant_columns`): Spearman(target, achieved), Spearman(target, gold) and,
    with a held-out `judge`, Spearman(target, the judge's per-row figure: its score, or an llm
    judge's verdict against the reference; columns `judge_spearman(judge)_*`) over
    the in-range targets, pooled over all rows (with a prompt-bootstrap interval) and as the mean
    of per-prompt correlations; plus the mean absolute calibration error |achieved - target| of
    the per-target means.

    A figure with no prompt on which the score varies with the target is NaN, interval too, and
    `spearman_note` / `spearman_gold_note` say why (see `spearman_note`); "" when defined.
    """
    records = []
    figures = [("spearman", "reward", None), ("spearman_gold", "gold", None)]
    if judge is not None:
        figures.append((judge_spearman(judge), judge.row_column, judge.label))
    conditioned = frame[frame["conditioned"] & frame["in_range"].fillna(False)]
    for method in conditioned["method"].unique():
        rows = conditioned[conditioned["method"] == method]
        record = {"method": method, "n": len(rows), "n_prompts": rows["post_id"].nunique()}
        for label, column, scores in figures:
            usable = rows.dropna(subset=[column])
            mean, n_defined = spearman_per_prompt(usable, "target_reward", column)
            note = spearman_note(usable, column, n_defined, scores)
            pooled, low, high = float("nan"), float("nan"), float("nan")
            if not note.startswith("undefined"):
                statistic = _pooled(column)
                pooled = statistic(usable)
                low, high = prompt_bootstrap(
                    statistic,
                    [usable],
                    ["target_reward", column],
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
            record[f"{label}_pooled"] = pooled
            record[f"{label}_pooled_ci_low"], record[f"{label}_pooled_ci_high"] = low, high
            record[f"{label}_per_prompt_mean"] = mean
            record[f"{label}_per_prompt_n"] = n_defined
            record[f"{label}_note"] = note
        per_target = rows.groupby("target_name")[["target_reward", "reward"]].mean()
        record["calibration_mae"] = float(
            (per_target["reward"] - per_target["target_reward"]).abs().mean()
        )
        records.append(record)
    columns = [
        "method",
        "n",
        "n_prompts",
        "spearman_pooled",
        "spearman_pooled_ci_low",
        "spearman_pooled_ci_high",
        "spearman_per_prompt_mean",
        "spearman_per_prompt_n",
        "spearman_note",
        "spearman_gold_pooled",
        "spearman_gold_pooled_ci_low",
        "spearman_gold_pooled_ci_high",
        "spearman_gold_per_prompt_mean",
        "spearman_gold_per_prompt_n",
        "spearman_gold_note",
    ]
    if judge is not None:
        stem = judge_spearman(judge)
        columns += [f"{stem}_{suffix}" for suffix in (
            "pooled", "pooled_ci_low", "pooled_ci_high", "per_prompt_mean", "per_prompt_n", "note"
        )]  # fmt: skip
    table = pd.DataFrame.from_records(records, columns=[*columns, "calibration_mae"])
    return variant_columns(table, settings.seed)


def rankable(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows of a published table whose `column` may be ranked: it has a value and rests on
    at least `MIN_PROMPTS` prompts (`n_prompts`; for a pooled Spearman, the prompts on which the
    score varies with the target, `<label>_per_prompt_n`)."""
    count = column.replace("_pooled", "_per_prompt_n") if column.endswith("_pooled") else None
    prompts = table[count] if count else table["n_prompts"]
    return table[table[column].notna() & (prompts >= MIN_PROMPTS)]


def compared_metrics(judge: HeldOutJudge | None) -> dict[str, tuple[str, str, str]]:
    """metric -> (row column in `combine`'s frame, table it is read from, column there): the
    proxy's achieved reward, win rate and calibration, and the held-out `judge`'s figures (its
    score `judge_<name>_mean` for a score judge, and its win rate `judge_<name>_winrate`); no
    judge figure without a judge."""
    metrics = {"achieved_reward": ("reward", "winrate", "achieved_reward_mean")}
    if judge is not None and judge.scores:
        metrics[judge.metric] = (judge.row_column, "winrate", judge.metric)
    metrics["winrate_rm"] = ("win_rm", "winrate", "winrate_rm")
    if judge is not None:
        metrics[judge.winrate] = (win_column(judge.name), "winrate", judge.winrate)
    metrics["spearman_pooled"] = ("reward", "correlation", "spearman_pooled")
    return metrics


def compare_methods(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    correlation: pd.DataFrame,
    settings: BootstrapSettings,
    main_method: str | None = None,
    judge: HeldOutJudge | None = None,
) -> pd.DataFrame:
    """Paired bootstrap tests (over shared prompts) of the leader of each headline metric
    against every other method, and of `main_method` against every other method.

    Metrics (`compared_metrics`): achieved reward, the held-out `judge`'s score
    (`judge_<name>_mean`, score judges only), the win rates against the reference under the
    reward model and under `judge` (`judge_<name>_winrate`; an llm judge's verdicts), each
    method at its headline target, and the pooled Spearman(target, achieved) over in-range
    targets (conditioned methods only; their `target_name` reads `in_range`). The judge's
    per-prompt values are `attach_judges`' columns of `frame` (the judged files). Without a
    judge, the proxy's metrics only. A difference is significant when its interval excludes
    zero.
    """
    chosen = best_targets(summary)
    tables = {"winrate": win_rates(summary), "correlation": correlation}
    records = []
    for metric, (row_column, table_name, table_column) in compared_metrics(judge).items():
        table = rankable(tables[table_name], table_column)
        if len(table) < 2:
            continue
        value = table.set_index("method")[table_column]
        leader = value.idxmax()
        pairs = [(leader, other) for other in value.index if other != leader]
        if main_method in value.index and main_method != leader:
            pairs += [(main_method, other) for other in value.index if other != main_method]
        for method, other in dict.fromkeys(pairs):
            if metric == "spearman_pooled":
                usable = frame["in_range"].fillna(False) & frame["reward"].notna()
                a, b = (frame[(frame["method"] == m) & usable] for m in (method, other))
                difference = spearman(a["target_reward"], a["reward"]) - spearman(
                    b["target_reward"], b["reward"]
                )
                low, high = prompt_bootstrap(
                    lambda x, y: _pooled("reward")(x) - _pooled("reward")(y),
                    [a, b],
                    ["target_reward", "reward"],
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
                n_prompts = len(set(a["post_id"]) & set(b["post_id"]))
            else:
                a, b = (
                    frame[(frame["method"] == m) & (frame["target_name"] == chosen[m])]
                    .groupby("post_id")[row_column]
                    .mean()
                    for m in (method, other)
                )
                difference, low, high, n_prompts = paired_difference(
                    a,
                    b,
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
            per_target = metric != "spearman_pooled"
            records.append(
                {
                    "metric": metric,
                    "method": method,
                    "target_name": chosen[method] if per_target else IN_RANGE,
                    "other": other,
                    "other_target_name": chosen[other] if per_target else IN_RANGE,
                    "method_value": value[method],
                    "other_value": value[other],
                    "difference": difference,
                    "ci_low": low,
                    "ci_high": high,
                    "n_prompts": n_prompts,
                    "significant": bool(low > 0 or high < 0),
                }
            )
    columns = [
        "metric",
        "method",
        "target_name",
        "other",
        "other_target_name",
        "method_value",
        "other_value",
        "difference",
        "ci_low",
        "ci_high",
        "n_prompts",
        "significant",
    ]
    return pd.DataFrame.from_records(records, columns=columns)

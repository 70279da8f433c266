"""The judges' columns of the published tables (issue 17 §1): the judged rows of rules `judge`
and `judge_references` joined onto `summary.combine`'s frame (`attach_judges`), and the
per-method x condition means and win rates against the reference (`judge_summary`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rewardcond.evaluation.metrics import win_indicator
from rewardcond.judges import ROW_KEYS, judge_column
from rewardcond.stats import BootstrapSettings, bootstrap_ci
from rewardcond.tables import require_columns

#: Judge kinds that give a score per summary (the others, `llm`, a verdict vs the reference).
SCORE_KINDS = ("gold", "reward_model")


def win_column(name: str) -> str:
    """The per-row win indicator of judge `name` against the reference: `win_judge_<name>`."""
    return f"win_{judge_column(name)}"


@dataclass(frozen=True)
class HeldOutJudge:
    """The configured main judge (`evaluate.main_judge`): the held-out side of the comparisons,
    the matched-KL and over-optimisation tables, their plots and the verdict (issue 17 §1).

    A score judge (kind gold or reward_model) is compared on its score: per row `judge_<name>`,
    per method x condition `judge_<name>_mean` with `_ci_low`/`_ci_high`. An llm judge gives a
    verdict against the reference, no score: it is compared on its win rate against the
    reference, per row `win_judge_<name>` (1, 0.5, 0; NaN for a malformed answer, left out),
    per method x condition `judge_<name>_winrate` with its interval.
    """

    name: str
    kind: str

    @property
    def scores(self) -> bool:
        """Whether the judge gives a score per summary (gold, reward_model), not a verdict."""
        return self.kind in SCORE_KINDS

    @property
    def row_column(self) -> str:
        """The per-row column of `attach_judges`' frame that paired differences compare."""
        return judge_column(self.name) if self.scores else win_column(self.name)

    @property
    def metric(self) -> str:
        """Its summary / winrate column, also its `metric` in comparisons and matched_kl:
        `judge_<name>_mean` (score judges) or `judge_<name>_winrate` (llm)."""
        return f"{judge_column(self.name)}_{'mean' if self.scores else 'winrate'}"

    @property
    def interval(self) -> tuple[str, str, str]:
        """(mean, ci_low, ci_high) columns of `metric` in summary and winrate."""
        stem = judge_column(self.name) if self.scores else self.winrate
        return self.metric, f"{stem}_ci_low", f"{stem}_ci_high"

    @property
    def winrate(self) -> str:
        """Its win-rate column against the reference: `judge_<name>_winrate`."""
        return f"{judge_column(self.name)}_winrate"

    @property
    def label(self) -> str:
        """What `metric` is, for text: `deberta score` or `gpt win rate vs the reference`."""
        return f"{self.name} score" if self.scores else f"{self.name} win rate vs the reference"


def held_out_judge(judges: Mapping[str, str] | None, main_judge: str | None) -> HeldOutJudge | None:
    """The `HeldOutJudge` named `main_judge` among `judges` ({name: kind}, `evaluate.judges`);
    None when no judge is configured (then only the proxy judges, and the outputs say so).

    Raises ValueError naming `evaluate.main_judge` when it names no configured judge, or when
    judges are configured without one."""
    judges = dict(judges or {})
    if main_judge is None and not judges:
        return None
    if main_judge not in judges:
        raise ValueError(
            f"evaluate.main_judge: {main_judge!r} is not the name of a judge; expected one of "
            f"{sorted(judges)} (evaluate.judges)"
        )
    return HeldOutJudge(main_judge, judges[main_judge])


def attach_judges(
    frame: pd.DataFrame,
    judged: Sequence[pd.DataFrame],
    references: pd.DataFrame,
    judges: Mapping[str, str],
) -> pd.DataFrame:
    """`frame` (`summary.combine`'s) with, per judge `name` of `judges` ({name: kind}), its
    column `judge_<name>` (score or verdict) and `win_judge_<name>`: for a score judge (gold,
    reward_model) 1 where the summary out-scores the reference on that judge, 0.5 on a tie, 0
    below (`metrics.win_indicator`); for an llm judge its verdict against the reference itself
    (1, 0.5, 0 or NaN for a malformed answer).

    `judged`: the rule `judge` files' frames (keys `ROW_KEYS`), `references`: rule
    `judge_references`' frame (key post_id). Raises ValueError naming the method and target of
    rows that have no judged row, naming the post_ids without a judged reference, or naming a
    judge without its column.
    """
    columns = [judge_column(name) for name in judges]
    parts = []
    for part in judged:
        require_columns(part, (*ROW_KEYS, *columns), "judged")
        parts.append(part[[*ROW_KEYS, *columns]])
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*ROW_KEYS])
    if table.duplicated(list(ROW_KEYS)).any():
        first = table[table.duplicated(list(ROW_KEYS))].iloc[0]
        raise ValueError(f"judged: more than one row for {dict(first[list(ROW_KEYS)])}")
    merged = frame.merge(table, on=list(ROW_KEYS), how="left", indicator=True)
    missing = merged["_merge"] != "both"
    if missing.any():
        counts = merged[missing].groupby(["method", "target_name"], sort=False).size()
        listed = ", ".join(f"method {m!r} target {t!r} ({n} rows)" for (m, t), n in counts.items())
        raise ValueError(f"judged: no judged row for {listed}; rerun rule judge")
    merged = merged.drop(columns="_merge")
    require_columns(references, ("post_id", *columns), "judged/references")
    reference = references.set_index("post_id")
    absent = sorted(set(merged["post_id"]) - set(reference.index))
    if absent:
        raise ValueError(f"judged/references: no judged reference for post_id {absent[:5]}")
    for name, kind in judges.items():
        column = judge_column(name)
        if kind in SCORE_KINDS:
            against = reference.loc[merged["post_id"], column].to_numpy()
            merged[win_column(name)] = win_indicator(merged[column], against)
        else:
            merged[win_column(name)] = merged[column].to_numpy(dtype=np.float64)
    return merged


def mean_ci(
    rows: pd.DataFrame, column: str, settings: BootstrapSettings
) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) of `rows[column]` over its non-NaN rows, cluster bootstrap over
    `rows["post_id"]` (`rewardcond.stats.bootstrap_ci`); all NaN without any such row."""
    values = rows[column].to_numpy(dtype=np.float64)
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan"), float("nan"), float("nan")
    low, high = bootstrap_ci(
        values[keep],
        rows["post_id"].to_numpy()[keep],
        n_resamples=settings.n_resamples,
        level=settings.level,
        seed=settings.seed,
    )
    return float(values[keep].mean()), low, high


def judge_summary(
    rows: pd.DataFrame, judges: Mapping[str, str], settings: BootstrapSettings
) -> dict[str, float]:
    """One method x condition's judge columns, from `attach_judges`' rows: per score judge
    `judge_<name>_mean`, `_ci_low`, `_ci_high` (the judge's score; cluster bootstrap over
    prompts, `rewardcond.stats.bootstrap_ci`), and per judge `judge_<name>_winrate`,
    `_winrate_ci_low`, `_winrate_ci_high` (share of rows beating the reference on that judge,
    ties half; for an llm judge the mean verdict). NaN rows (a malformed llm answer) are left
    out."""
    record = {}
    for name, kind in judges.items():
        column = judge_column(name)
        if kind in SCORE_KINDS:
            mean, low, high = mean_ci(rows, column, settings)
            record.update(
                {f"{column}_mean": mean, f"{column}_ci_low": low, f"{column}_ci_high": high}
            )
        mean, low, high = mean_ci(rows, win_column(name), settings)
        record.update(
            {
                f"{column}_winrate": mean,
                f"{column}_winrate_ci_low": low,
                f"{column}_winrate_ci_high": high,
            }
        )
    return record

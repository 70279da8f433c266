"""The tables that pass between stages: their columns, the target name of an unconditioned pass,
and the (chosen, rejected) pairs of the comparisons table.

Pure pandas/numpy, so that every stage (and a light job) can read them without loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Columns of `generations/<method>.parquet` (the generation stage, `rewardcond.summaries`).
GENERATION_COLUMNS = (
    "method",
    "post_id",
    "target_name",
    "target_reward",
    "sample",
    "text",
    "n_tokens",
    "finished",
    "n_candidates",
)
#: Columns of `eval_prompts.parquet` that the generation and evaluation stages read.
EVAL_PROMPT_COLUMNS = ("post_id", "subreddit", "title", "post", "reference")
#: `target_name` of a generation pass without a target reward (a baseline, e.g. `sft`).
NO_TARGET = "none"


def require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise a ValueError naming `where` and the missing columns if `frame` lacks any."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: missing columns {missing}; expected at least {list(columns)}, "
            f"found {list(frame.columns)}"
        )


def comparison_pairs(comparisons: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison, in its order: `post_id`, `chosen`, `rejected`, the summary the
    labeller preferred (`choice`, 0 or 1: the index of `summary_0` / `summary_1`) first.

    The index is the comparisons' own, so that other columns can be aligned with it.

    Raises:
        ValueError: naming the first row (by position) whose `choice` is not 0 or 1.
    """
    require_columns(comparisons, ("post_id", "summary_0", "summary_1", "choice"), "comparisons")
    bad = ~comparisons["choice"].isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"comparisons row {row}: field 'choice' is {comparisons['choice'].iloc[row]}; "
            "expected 0 or 1"
        )
    first_wins = comparisons["choice"].to_numpy() == 0
    return pd.DataFrame(
        {
            "post_id": comparisons["post_id"],
            "chosen": comparisons["summary_0"].where(first_wins, comparisons["summary_1"]),
            "rejected": comparisons["summary_1"].where(first_wins, comparisons["summary_0"]),
        },
        index=comparisons.index,
    )

"""The judges' stages (the rules' file I/O): `run_judge` (one method's evaluated rows, or the
reference summaries) and `run_judge_agreement` (`tables/judges.csv`); `run_examples` is in
`rewardcond.judges.examples` (no torch)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_json, write_parquet, write_table
from rewardcond.judges import ROW_KEYS, judge_column
from rewardcond.judges.agreement import (
    COLUMNS,
    agreement_row,
    judge_agreement,
    proxy_row,
    valid2_comparisons,
)
from rewardcond.judges.scoring import judge_rows
from rewardcond.stats import BootstrapSettings
from rewardcond.tables import NO_TARGET

log = logging.getLogger(__name__)

REFERENCES = "references"


def _prompts(path: str | os.PathLike) -> pd.DataFrame:
    prompts = pd.read_parquet(path)
    return prompts.set_index("post_id", drop=False)


def run_judge(
    *,
    rows_path: str | os.PathLike | None,
    prompts_path: str | os.PathLike,
    output: str | os.PathLike,
    summaries: Mapping[str, str | os.PathLike],
    judges: Sequence[Mapping],
    device: str = "auto",
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Rules `judge` and `judge_references`: every row judged by every judge.

    `rows_path` is one method's evaluated rows (keyed by `ROW_KEYS`), or None for the
    reference summaries of the eval prompts (keyed by post_id; an llm judge's verdict of a
    reference against itself is the tie 0.5, asked of no one). Writes `output` (Parquet: the
    keys and one `judge_<name>` column per judge, in config order) and, per llm judge, its
    summary JSON at `summaries[name]` (win rates with intervals, malformed, disagreements,
    tokens, cost). Returns the judged table."""
    prompts = _prompts(prompts_path)
    if rows_path is None:
        rows = pd.DataFrame(
            {
                "method": REFERENCES,
                "post_id": prompts["post_id"].to_numpy(),
                "target_name": NO_TARGET,
                "text": prompts["reference"].to_numpy(),
            }
        )
        keys, where = ["post_id"], f"the references of {prompts_path}"
    else:
        rows = pd.read_parquet(rows_path)
        keys, where = list(ROW_KEYS), str(rows_path)
    values, llm_summaries = judge_rows(
        list(judges), rows, prompts, device=device, bootstrap=bootstrap, environ=environ,
        where=where,
    )  # fmt: skip
    judged = rows[keys].reset_index(drop=True).copy()
    for name, column in values.items():
        judged[judge_column(name)] = np.asarray(column, dtype=np.float64)
    for name, summary in llm_summaries.items():
        write_json(summaries[name], summary)
        log.info("judge %s: summary %s", name, summaries[name])
    write_parquet(output, judged)
    log.info("wrote %s (%d rows, judges %s)", output, len(judged), list(values))
    return judged


def run_judge_agreement(
    *,
    comparisons_path: str | os.PathLike,
    posts_path: str | os.PathLike,
    accuracy_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    judges: Sequence[Mapping],
    identities: Mapping[str, str],
    max_comparisons: int | None = None,
    device: str = "auto",
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Rule `judge_agreement`: the proxy's valid2 row (from the accuracy table at
    `accuracy_path`) and one row per judge (`rewardcond.judges.agreement`), written as CSV and
    Markdown. `identities` names each judge's model (e.g. `hub_id@revision`)."""
    bootstrap = bootstrap or BootstrapSettings()
    pairs = valid2_comparisons(
        pd.read_parquet(comparisons_path), max_comparisons=max_comparisons, seed=bootstrap.seed
    )
    posts = _prompts(posts_path)
    rows = [proxy_row(pd.read_csv(accuracy_path))]
    for judge in judges:
        correct = judge_agreement(
            judge, pairs, posts, device=device, bootstrap=bootstrap, environ=environ
        )
        rows.append(
            agreement_row(
                judge["name"], judge["kind"], identities[judge["name"]], correct, bootstrap
            )
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    level = round(100 * bootstrap.level)
    write_table(
        table,
        csv_path,
        md_path,
        title=f"Agreement of each judge (and of the proxy) with the human labels on the "
        f"{len(pairs)} valid2 comparisons ({level}% bootstrap CIs over comparisons; ties 0.5)",
    )
    return table

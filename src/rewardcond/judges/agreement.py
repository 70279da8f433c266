"""How often each judge agrees with the human labels on the valid2 comparisons: the number that
says how far a judge can be trusted (`tables/judges.csv`).

Per comparison (two summaries of one post, the labeller's `choice`): a gold or reward_model
judge scores both summaries and agrees (1) when it scores the chosen one higher, disagrees (0)
when lower, and ties count half (0.5), exactly as the proxy's accuracy is counted
(`rewardcond.reward_models.accuracy.pairwise_correct`). An llm judge compares the two summaries
directly (summary_1 in the place of the generated summary, summary_0 in that of the
reference, both orders asked): its verdict for summary_1 (1, 0.5 when the orders disagree, 0)
is the agreement when the labeller chose summary_1, one minus it otherwise; a malformed answer
is left out and counted (`n_unjudged`). The interval is a percentile bootstrap over
comparisons (`rewardcond.stats.bootstrap_ci`), as in the proxy's accuracy table, whose valid2
row is copied in as the `proxy` row (not measured twice).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rewardcond.judges.scoring import POST_FIELDS, llm_verdicts, score_summaries
from rewardcond.reward_models.accuracy import pairwise_correct
from rewardcond.stats import BootstrapSettings, bootstrap_ci

SPLIT = "valid2"
DOMAIN = "tldr"
COLUMNS = (
    "judge", "kind", "model", "split", "n", "n_unjudged", "agreement", "ci_low", "ci_high",
    "source",
)  # fmt: skip


def valid2_comparisons(
    comparisons: pd.DataFrame, *, max_comparisons: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """The TL;DR comparisons of split valid2 (all, or a seeded sample of `max_comparisons`, kept
    in file order). ValueError when there are none."""
    domain = comparisons["domain"] if "domain" in comparisons.columns else DOMAIN
    subset = comparisons[(comparisons["split"] == SPLIT) & (domain == DOMAIN)]
    if subset.empty:
        raise ValueError(f"no {SPLIT} comparisons of domain {DOMAIN}: nothing to agree with")
    if max_comparisons is not None and len(subset) > max_comparisons:
        subset = subset.sample(n=max_comparisons, random_state=seed).sort_index()
    return subset.reset_index(drop=True)


def judge_agreement(
    judge: Mapping,
    pairs: pd.DataFrame,
    posts: pd.DataFrame,
    *,
    device: str = "auto",
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Per comparison of `pairs` (post_id, summary_0, summary_1, choice): 1 the judge agrees
    with the labeller, 0 it does not, 0.5 a tie, NaN not judged (an empty summary's score, a
    malformed llm answer). `posts` is indexed by post_id (post fields)."""
    choice = pairs["choice"].to_numpy()
    if judge["kind"] == "llm":
        # One row per comparison, keyed by its position: a post has several comparisons, each
        # with its own "reference" (summary_0).
        rows = pd.DataFrame(
            {
                "post_id": range(len(pairs)),
                "text": pairs["summary_1"].to_numpy(),
                "method": SPLIT,
                "target_name": "comparison",
            }
        )
        prompts = posts.loc[pairs["post_id"], list(POST_FIELDS)].reset_index(drop=True)
        prompts = prompts.assign(reference=pairs["summary_0"].to_numpy())
        verdicts, _ = llm_verdicts(
            judge, rows, prompts, bootstrap=bootstrap, environ=environ, where=f"{SPLIT} pairs"
        )
        return np.where(choice == 1, verdicts, 1.0 - verdicts)
    count = len(pairs)
    scores = score_summaries(
        judge,
        [*pairs["post_id"], *pairs["post_id"]],
        [*pairs["summary_0"], *pairs["summary_1"]],
        posts,
        device=device,
    )
    reward_0, reward_1 = scores[:count], scores[count:]
    correct = pairwise_correct(reward_0, reward_1, choice)
    return np.where(np.isfinite(reward_0) & np.isfinite(reward_1), correct, np.nan)


def agreement_row(
    name: str, kind: str, model: str, correct: np.ndarray, bootstrap: BootstrapSettings
) -> dict:
    """One row of the table: counts, mean agreement and its bootstrap interval."""
    judged = correct[np.isfinite(correct)]
    low, high = bootstrap_ci(
        judged, n_resamples=bootstrap.n_resamples, level=bootstrap.level, seed=bootstrap.seed
    )
    return {
        "judge": name,
        "kind": kind,
        "model": model,
        "split": SPLIT,
        "n": int(judged.size),
        "n_unjudged": int(correct.size - judged.size),
        "agreement": float(judged.mean()) if judged.size else np.nan,
        "ci_low": low,
        "ci_high": high,
        "source": "this run",
    }


def proxy_row(accuracy: pd.DataFrame) -> dict:
    """The proxy's own row, copied from the reward-model accuracy table (its measured valid2
    TL;DR row over all comparisons); ValueError when the table has none."""
    domain = accuracy["domain"] if "domain" in accuracy.columns else DOMAIN
    row = accuracy[
        (accuracy["kind"] == "measured")
        & (accuracy["split"] == SPLIT)
        & (accuracy["subset"] == "all")
        & (domain == DOMAIN)
    ]
    if len(row) != 1:
        raise ValueError(
            f"the reward-model accuracy table has {len(row)} measured {SPLIT} rows over all "
            "comparisons; expected 1"
        )
    row = row.iloc[0]
    return {
        "judge": "proxy",
        "kind": "proxy",
        "model": row["model"],
        "split": SPLIT,
        "n": int(row["n"]),
        "n_unjudged": int(row["n_unscored"]),
        "agreement": float(row["accuracy"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "source": "reward_model/accuracy.csv",
    }

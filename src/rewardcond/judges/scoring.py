"""Each judge's score (gold, reward_model) or verdict (llm) for rows of (post, summary).

A judge is given as a mapping (what the workflow passes; see `rewardcond.judges`):
- `{"name", "kind": "gold", "path"}`: `path` is the world's `gold.jsonl`;
- `{"name", "kind": "reward_model", "scorer"}`: `scorer` is the keyword arguments of
  `rewardcond.reward_models.scoring.load_scorer` (folder, revision, template, dtype, max_length,
  batch_tokens, input_format);
- `{"name", "kind": "llm", "settings", "cache_dir"}`: `settings` is the `LLMJudgeSettings` keys,
  `cache_dir` where every judgment is cached (a rerun pays nothing twice).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from rewardcond.data.synthetic import GoldReward
from rewardcond.llm_judge.protocol import LLMJudgeSettings
from rewardcond.llm_judge.stage import judge_table
from rewardcond.stats import BootstrapSettings

log = logging.getLogger(__name__)

KINDS = ("gold", "reward_model", "llm")
POST_FIELDS = ("subreddit", "title", "post")


def _unique_pairs(post_ids, texts) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct (post_id, text) pairs and, per row, the index of its pair."""
    pairs = pd.DataFrame({"post_id": list(post_ids), "text": list(texts)}).fillna({"text": ""})
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(pairs))
    unique = pairs.drop_duplicates().reset_index(drop=True)
    return unique, codes


def score_summaries(
    judge: Mapping, post_ids, texts, prompts: pd.DataFrame, *, device: str = "auto"
) -> np.ndarray:
    """Scores (float64, one per row) of `texts` as summaries of the posts `post_ids` by a gold or
    reward_model judge; each distinct (post, text) pair is scored once. `prompts` is indexed by
    post_id and holds subreddit, title, post. An empty summary gets NaN from a reward model
    (skipped, as the proxy's `on_empty: skip`); any other non-finite score is an error."""
    unique, codes = _unique_pairs(post_ids, texts)
    if judge["kind"] == "gold":
        values = GoldReward.load(judge["path"]).score(
            unique["post_id"].tolist(), unique["text"].tolist()
        )
    elif judge["kind"] == "reward_model":
        # Imported here: gold and llm judges run without torch (seconds of start-up per job).
        from rewardcond.reward_models.scoring import load_scorer

        scorer = load_scorer(**judge["scorer"], device=device, on_empty="skip", progress=False)
        missing = sorted(set(unique["post_id"]) - set(prompts.index))
        if missing:
            raise ValueError(f"judge {judge['name']}: post_id {missing[:5]} not among the posts")
        posts = prompts.loc[unique["post_id"], list(POST_FIELDS)].to_dict("records")
        values = scorer.score(posts, unique["text"].tolist())
    else:
        raise ValueError(f"judge {judge['name']}: kind {judge['kind']!r} gives no score")
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values) & (unique["text"].fillna("").str.strip() != "").to_numpy()
    if bad.any():
        raise ValueError(
            f"judge {judge['name']} gave {int(bad.sum())} non-finite scores for non-empty "
            f"summaries (first: post_id {unique['post_id'][bad].iloc[0]!r})"
        )
    log.info("judge %s: %d distinct summaries of %d rows", judge["name"], len(unique), len(codes))
    return values[codes]


def llm_verdicts(
    judge: Mapping,
    rows: pd.DataFrame,
    prompts: pd.DataFrame,
    *,
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
    where: str = "the rows",
) -> tuple[np.ndarray, dict]:
    """(verdicts, summary) of an llm judge for `rows` (post_id, text, method, target_name)
    against each post's `reference` in `prompts` (indexed by post_id): verdict 1, 0.5, 0, or NaN
    when malformed (`rewardcond.llm_judge.stage.judge_table`, which also gives the summary: win
    rates, malformed, disagreements, tokens, cost)."""
    frame = rows[["post_id", "text", "method", "target_name"]].reset_index(drop=True)
    posts = prompts.loc[frame["post_id"], [*POST_FIELDS, "reference"]].reset_index(drop=True)
    frame = pd.concat([frame, posts], axis=1)
    verdicts, summary = judge_table(
        frame,
        LLMJudgeSettings(**judge["settings"]),
        judge["cache_dir"],
        bootstrap=bootstrap,
        environ=environ,
        where=where,
    )
    return verdicts["verdict"].to_numpy(dtype=np.float64), {"name": judge["name"], **summary}


def judge_rows(
    judges: list[Mapping],
    rows: pd.DataFrame,
    prompts: pd.DataFrame,
    *,
    device: str = "auto",
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
    where: str = "the rows",
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """({judge name: one value per row}, {llm judge name: its summary}) for `rows` (post_id,
    text, method, target_name) of the posts in `prompts` (indexed by post_id, with the post
    fields and `reference`)."""
    values, summaries = {}, {}
    for judge in judges:
        if judge["kind"] not in KINDS:
            raise ValueError(f"judge {judge['name']}: kind {judge['kind']!r}; expected {KINDS}")
        if judge["kind"] == "llm":
            values[judge["name"]], summaries[judge["name"]] = llm_verdicts(
                judge, rows, prompts, bootstrap=bootstrap, environ=environ, where=where
            )
        else:
            values[judge["name"]] = score_summaries(
                judge, rows["post_id"], rows["text"], prompts, device=device
            )
    return values, summaries

"""Scoring generations and reference summaries: the reward-model score (`reward`), the gold
reward where the world has one (`gold`) and ROUGE against the reference; the `evaluate` and
`score_references` stages."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_parquet
from rewardcond.data.synthetic import GoldReward
from rewardcond.evaluation.metrics import is_empty, rouge_scores
from rewardcond.reward_models.scoring import load_scorer
from rewardcond.tables import EVAL_PROMPT_COLUMNS, GENERATION_COLUMNS, require_columns

log = logging.getLogger(__name__)


class SummaryScorer(Protocol):
    """Raw scores of any summaries of posts (dicts of subreddit, title, post): what
    `rewardcond.reward_models.scoring.load_scorer` returns (a `RewardModelScorer`)."""

    def score(self, posts: list[dict], summaries: list[str]) -> np.ndarray: ...


class GoldScorer(Protocol):
    """What `rewardcond.data.synthetic.GoldReward` is: the ground-truth reward of a world."""

    def score(self, post_ids: list[str], texts: list[str]) -> np.ndarray: ...


def _check_prompts(prompts: pd.DataFrame, where: str) -> pd.DataFrame:
    require_columns(prompts, EVAL_PROMPT_COLUMNS, where)
    if prompts["post_id"].duplicated().any():
        duplicated = prompts.loc[prompts["post_id"].duplicated(), "post_id"].tolist()
        raise ValueError(f"{where}: duplicated post_id {duplicated[:5]}")
    missing = prompts.loc[prompts["reference"].isna(), "post_id"].tolist()
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} eval prompts have no reference summary "
            f"(post_id {missing[:5]}); ROUGE and win rates need one for every prompt"
        )
    return prompts.set_index("post_id", drop=False)


def _score_unique(
    prompts: pd.DataFrame,
    post_ids: Sequence[str],
    texts: Sequence[str],
    scorer: SummaryScorer,
    gold: GoldScorer | None,
) -> tuple[np.ndarray, np.ndarray]:
    """RM and gold scores of (post, text) pairs, each distinct pair scored once.

    Greedy decoding at neighbouring targets often repeats a summary; scoring it once is cheaper
    and gives the same number.
    """
    pairs = pd.DataFrame({"post_id": list(post_ids), "text": list(texts)})
    unique = pairs.drop_duplicates().reset_index(drop=True)
    log.info("scoring %d distinct (post, summary) pairs of %d rows", len(unique), len(pairs))
    posts = prompts.loc[unique["post_id"], ["subreddit", "title", "post"]].to_dict("records")
    reward = np.asarray(scorer.score(posts, unique["text"].tolist()), dtype=np.float64)
    if reward.shape != (len(unique),):
        raise ValueError(f"scorer returned {reward.shape} values; expected ({len(unique)},)")
    # An empty summary has no reward-model score (the scorer skips it with NaN, or raises, per
    # its on_empty); any other missing score is an error.
    unscored = ~np.isfinite(reward) & ~is_empty(unique["text"])
    if unscored.any():
        raise ValueError(
            f"scorer returned {int(unscored.sum())} non-finite rewards for non-empty summaries "
            f"(first: post_id {unique['post_id'][unscored].iloc[0]!r}); expected finite rewards"
        )
    if gold is None:
        gold_values = np.full(len(unique), np.nan)
    else:
        gold_values = np.asarray(
            gold.score(unique["post_id"].tolist(), unique["text"].tolist()), dtype=np.float64
        )
        if gold_values.shape != (len(unique),):
            raise ValueError(f"gold scorer returned {gold_values.shape}; expected ({len(unique)},)")
    unique["reward"], unique["gold"] = reward, gold_values
    merged = pairs.merge(unique, on=["post_id", "text"], how="left", validate="many_to_one")
    return merged["reward"].to_numpy(), merged["gold"].to_numpy()


def evaluate_generations(
    generations: pd.DataFrame,
    prompts: pd.DataFrame,
    *,
    scorer: SummaryScorer,
    gold: GoldScorer | None = None,
    use_stemmer: bool = True,
    where: str = "generations",
) -> pd.DataFrame:
    """Generations plus `reward` (reward model), `gold` (NaN without a gold function) and
    `rouge1`, `rouge2`, `rougeL` against each prompt's reference summary."""
    require_columns(generations, GENERATION_COLUMNS, where)
    keys = ["method", "post_id", "target_name", "sample"]
    duplicated = generations.duplicated(keys)
    if duplicated.any():
        first = generations.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{where}: {int(duplicated.sum())} duplicated rows of {keys} (first: {first})"
        )
    prompts = _check_prompts(prompts, "eval prompts")
    unknown = sorted(set(generations["post_id"]) - set(prompts.index))
    if unknown:
        raise ValueError(f"{where}: post_id {unknown[:5]} ({len(unknown)}) not in the eval prompts")
    evaluated = generations.reset_index(drop=True).copy()
    evaluated["reward"], evaluated["gold"] = _score_unique(
        prompts, evaluated["post_id"], evaluated["text"], scorer, gold
    )
    references = prompts.loc[evaluated["post_id"], "reference"].tolist()
    for key, values in rouge_scores(
        evaluated["text"].tolist(), references, use_stemmer=use_stemmer
    ).items():
        evaluated[key] = values
    return evaluated


def evaluate_references(
    prompts: pd.DataFrame, *, scorer: SummaryScorer, gold: GoldScorer | None = None
) -> pd.DataFrame:
    """The human reference summaries of the eval prompts, scored like generations:
    `post_id, text, reward, gold`."""
    prompts = _check_prompts(prompts, "eval prompts").reset_index(drop=True)
    references = pd.DataFrame({"post_id": prompts["post_id"], "text": prompts["reference"]})
    references["reward"], references["gold"] = _score_unique(
        prompts.set_index("post_id", drop=False),
        references["post_id"],
        references["text"],
        scorer,
        gold,
    )
    return references


def run_evaluate(
    *,
    generations: str | os.PathLike,
    prompts: str | os.PathLike,
    output: str | os.PathLike,
    scorer_args: dict,
    gold_path: str | os.PathLike | None = None,
    use_stemmer: bool = True,
) -> None:
    """Rule `evaluate`: score one method's generations file with the reward model and gold."""
    frame = pd.read_parquet(generations)
    evaluated = evaluate_generations(
        frame,
        pd.read_parquet(prompts),
        scorer=_load_scorer(scorer_args),
        gold=_load_gold(gold_path),
        use_stemmer=use_stemmer,
        where=str(generations),
    )
    write_parquet(output, evaluated)
    log.info("wrote %s (%d rows)", output, len(evaluated))


def run_score_references(
    *,
    prompts: str | os.PathLike,
    output: str | os.PathLike,
    scorer_args: dict,
    gold_path: str | os.PathLike | None = None,
) -> None:
    """Rule `score_references`: score the reference summaries of the eval prompts."""
    references = evaluate_references(
        pd.read_parquet(prompts), scorer=_load_scorer(scorer_args), gold=_load_gold(gold_path)
    )
    write_parquet(output, references)
    log.info("wrote %s (%d rows)", output, len(references))


def _load_scorer(scorer_args: dict) -> SummaryScorer:
    return load_scorer(**scorer_args)


def _load_gold(path: str | os.PathLike | None) -> GoldScorer | None:
    return None if path is None else GoldReward.load(path)

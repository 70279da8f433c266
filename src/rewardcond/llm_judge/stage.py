"""The judging stage: every generated summary of a table judged against its reference, the
verdicts and a summary (win rates, requests, tokens and cost) written."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

import pandas as pd

from rewardcond.artifacts import write_json, write_parquet
from rewardcond.llm_judge.client import ChatJudge, JudgmentCache
from rewardcond.llm_judge.protocol import (
    INPUT_COLUMNS,
    LLMJudgeError,
    LLMJudgeSettings,
    format_post,
    judge_prompt,
    row_verdict,
)
from rewardcond.llm_judge.win_rates import win_rate_table
from rewardcond.stats import BootstrapSettings

log = logging.getLogger(__name__)


def judge_table(
    rows: pd.DataFrame,
    settings: LLMJudgeSettings,
    cache_dir: str | os.PathLike,
    *,
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    where: str = "the rows",
) -> tuple[pd.DataFrame, dict]:
    """Judge every generated summary (`text`) against its reference in both orders.

    `rows` holds `INPUT_COLUMNS` (post fields, reference, generated text, method, target_name;
    other columns are kept). Returns (verdicts, summary): verdicts are `rows` plus
    `length_difference` (characters, generated - reference), `identical`, `preferred_1`,
    `preferred_2` (position chosen with the generated summary as A, then as B; None when
    malformed), `rationale_1/2`, `answer_1/2` (the raw answers), `malformed`, `disagree` and
    `verdict` (1 win, 0.5 tie, 0 loss, NaN malformed). The summary dict holds the judge, the
    overall counts, tokens and estimated cost (of every judgment used, and of this run's new
    requests) and `groups`, the records of `win_rate_table` (`bootstrap` defaults to
    `BootstrapSettings()`).
    """
    missing = [column for column in INPUT_COLUMNS if column not in rows.columns]
    if missing:
        raise LLMJudgeError(
            f"{where}: missing columns {missing}; the judge needs {list(INPUT_COLUMNS)}"
        )
    frame = rows.reset_index(drop=True).copy()
    generated = frame["text"].fillna("").astype(str).str.strip()
    reference = frame["reference"].fillna("").astype(str).str.strip()
    frame["length_difference"] = generated.str.len() - reference.str.len()
    frame["identical"] = (generated == reference).to_numpy()
    posts = [format_post(row, settings.post_template) for row in frame.to_dict("records")]
    first = [judge_prompt(p, g, r) for p, g, r in zip(posts, generated, reference, strict=True)]
    second = [judge_prompt(p, r, g) for p, g, r in zip(posts, generated, reference, strict=True)]
    asked = ~frame["identical"].to_numpy()
    wanted = [prompt for i, prompt in enumerate(first) if asked[i]]
    wanted += [prompt for i, prompt in enumerate(second) if asked[i]]

    judge = ChatJudge(settings, JudgmentCache(cache_dir), environ=environ, sleep=sleep)
    answers = judge.judge_all(wanted)

    records = [
        row_verdict(answers[first[i]].content, answers[second[i]].content)
        if asked[i]
        else row_verdict(None, None)
        for i in range(len(frame))
    ]
    verdicts = pd.concat([frame, pd.DataFrame(records)], axis=1)

    used = [answers[prompt] for prompt in dict.fromkeys(wanted)]
    prompt_tokens = sum(c.prompt_tokens for c in used)
    completion_tokens = sum(c.completion_tokens for c in used)
    counts = judge.counts
    groups = win_rate_table(verdicts, bootstrap or BootstrapSettings(), settings.lc_l2_penalty)
    summary = {
        "judge": "llm",
        "model": settings.model,
        "base_url": settings.base_url,
        "protocol": "DPO (Rafailov et al. 2023) App. C.2 TL;DR prompt, both orders; a win "
        "needs both, disagreeing orders tie (0.5)",
        "n_rows": len(verdicts),
        "n_judged": int((~verdicts["malformed"]).sum()),
        "n_malformed": int(verdicts["malformed"].sum()),
        "n_identical": int(verdicts["identical"].sum()),
        "n_prompts_distinct": len(used),
        "api_calls": counts.api_calls,
        "retries": counts.retries,
        "cache_hits": counts.cache_hits,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": settings.cost_usd(prompt_tokens, completion_tokens),
        "prompt_tokens_this_run": counts.prompt_tokens,
        "completion_tokens_this_run": counts.completion_tokens,
        "cost_usd_this_run": settings.cost_usd(counts.prompt_tokens, counts.completion_tokens),
        "price_prompt_per_million": settings.price_prompt_per_million,
        "price_completion_per_million": settings.price_completion_per_million,
        "lc_length_unit": "characters",
        "lc_l2_penalty": settings.lc_l2_penalty,
        "groups": groups.to_dict("records"),
    }
    log.info(
        "LLM judge %s: %d rows, %d malformed, %d API calls (%d retries), %d cache hits, "
        "%d + %d tokens, estimated $%.4f (this run $%.4f)",
        settings.model,
        summary["n_rows"],
        summary["n_malformed"],
        counts.api_calls,
        counts.retries,
        counts.cache_hits,
        prompt_tokens,
        completion_tokens,
        summary["cost_usd"],
        summary["cost_usd_this_run"],
    )
    return verdicts, summary


def run_llm_judge(
    rows_path: str | os.PathLike,
    verdicts_path: str | os.PathLike,
    summary_path: str | os.PathLike,
    *,
    judge: Mapping,
    cache_dir: str | os.PathLike,
    bootstrap_samples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict:
    """The stage: judge the rows of a Parquet table (`judge_table`), write the verdicts as
    Parquet and the summary as JSON (both atomically), return the summary. `judge` is the
    keys of an llm judge of `evaluate.judges` (less name and kind)."""
    settings = LLMJudgeSettings(**judge)
    rows = pd.read_parquet(rows_path)
    verdicts, summary = judge_table(
        rows,
        settings,
        cache_dir,
        bootstrap=BootstrapSettings(n_resamples=bootstrap_samples, level=ci_level, seed=seed),
        where=str(rows_path),
    )
    write_parquet(verdicts_path, verdicts)
    write_json(summary_path, summary)
    return summary

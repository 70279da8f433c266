"""The `kl` and `kl_best_of_n` rules' stage functions and the per-method summary (see
`rewardcond.kl`)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rewardcond.artifacts import resolve_device, write_parquet
from rewardcond.batching import (
    PromptTemplate,
    completion_token_ids,
    max_text_length,
    require_eos_token,
)
from rewardcond.kl.estimators import (
    best_of_n_kl_bound,
    best_of_n_kl_estimate,
    per_prompt_kl,
    sample_log_ratios,
)
from rewardcond.kl.logprobs import BEST_OF_N_ESTIMATE, KL_COLUMNS, MONTE_CARLO, completion_logprobs
from rewardcond.methods import get_method
from rewardcond.modeling import RewardConditionedLM
from rewardcond.summaries import GenerateSettings, render_prompts

log = logging.getLogger(__name__)


# --- the stage ----------------------------------------------------------------------------------


def run_kl(
    method,
    *,
    model_path: str,
    sft_path: str,
    prompts_path: str,
    targets_path: str,
    output_path: str,
    template: str,
    settings: GenerateSettings,
    samples: int,
    seed: int,
    device: str = "auto",
) -> pd.DataFrame:
    """Rule `kl` for a method with a model: per-prompt KL(pi || pi_sft) at each condition.

    `method` (a `rewardcond.methods.Method`) loads its model from `model_path` and renders each
    condition's prompts as `generate_method` does with the same `settings` (config `generate`:
    `max_new_tokens`, `batch_size`, `max_prompt_tokens`; its decoding settings do not apply, the
    KL samples the policy itself); the sft model from `sft_path` scores the samples after the
    plain prompt. `samples` completions per prompt and condition (config `evaluate.kl_samples`);
    every condition's samples use the same `seed`, so that conditions differ only in their
    condition. Writes and returns `KL_COLUMNS` (one row per prompt and condition, `estimator`
    "monte_carlo", `kl_bound` NaN).
    """
    device = resolve_device(device)
    policy, tokenizer = method.load_model(model_path)
    policy.to(device).eval()
    same_model = os.path.realpath(model_path) == os.path.realpath(sft_path)
    if same_model:
        reference, reference_tokenizer = policy, tokenizer
    else:
        reference, reference_tokenizer = get_method("sft").load_model(sft_path)
        reference.to(device).eval()
    prompts = pd.read_parquet(prompts_path)
    with open(targets_path, encoding="utf-8") as handle:
        conditions = method.conditions(json.load(handle))
    prefix_tokens = max(len(tokenizer(c.prefix)["input_ids"]) for c in conditions)
    budget = min(settings.max_prompt_tokens, max_text_length(policy) - settings.max_new_tokens)
    rendered = render_prompts(prompts, tokenizer, PromptTemplate(template), budget - prefix_tokens)
    frames = []
    for condition in tqdm(conditions, desc=f"kl {method.name}", unit="condition"):
        rewards = None
        if isinstance(policy, RewardConditionedLM):
            rewards = [condition.target_reward] * len(rendered)
        rows = sample_log_ratios(
            policy,
            tokenizer,
            [condition.prefix + prompt for prompt in rendered],
            reference,
            reference_tokenizer,
            rendered,
            rewards,
            samples=samples,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            seed=seed,
        )
        per_prompt = per_prompt_kl(rows)
        frames.append(
            per_prompt.assign(
                method=method.name,
                post_id=prompts["post_id"].to_numpy()[per_prompt["prompt"]],
                target_name=condition.name,
                target_reward=condition.target_reward,
                estimator=MONTE_CARLO,
                kl_bound=np.nan,
            )
        )
        unsupported = int(per_prompt["n_unsupported"].sum())
        if unsupported:
            log.warning(
                "%s at %s: %d of %d samples hold a token sft cannot emit (KL infinite there)",
                method.name,
                condition.name,
                unsupported,
                len(rows),
            )
    return _write(frames, output_path, method.name)


def run_best_of_n_kl(
    method,
    *,
    generations_path: str,
    sft_path: str,
    prompts_path: str,
    output_path: str,
    template: str,
    settings: GenerateSettings,
    device: str = "auto",
) -> pd.DataFrame:
    """Rule `kl` for best-of-N (`bon<N>`), from its generations: per prompt, the analytic bound
    `log N - (N - 1)/N` (`kl_bound`) and the estimate of Beirami et al. 2024 (`kl`, estimator
    "best_of_n_beirami"): `best_of_n_kl_estimate(N, log pi_sft(y | x))` of each kept summary y,
    averaged over the prompt's kept summaries (generate.num_samples of them).

    log pi_sft(y | x) is scored after the prompt `generate_method` gave sft with the same
    `settings` (config `generate`); y is the kept summary's text re-encoded (+ EOS if it
    finished), which is the tokenization sft was trained on but not necessarily the one it
    sampled (text is all a generation keeps), so eps can be a little low (a rare non-canonical
    sample). `kl_k3` and `logp_policy` are NaN:
    best-of-N has no model whose likelihood one could evaluate.

    Raises:
        ValueError: naming method_options.bon when the candidates were not drawn from sft itself
            (temperature and top_p 1), for which both formulas hold; naming the generations file
            when its rows are not this method's or a prompt has none.
    """
    if method.temperature != 1.0 or method.top_p != 1.0:
        raise ValueError(
            f"method_options.bon: temperature={method.temperature}, top_p={method.top_p}; the "
            "best-of-N KL from sft (analytic and estimated) holds for candidates drawn from sft "
            "itself (temperature 1, top_p 1)"
        )
    n = method.n_candidates
    generations = pd.read_parquet(generations_path)
    wrong = sorted(set(generations["method"]) - {method.name}) + sorted(
        set(generations["n_candidates"]) - {n}
    )
    if wrong:
        raise ValueError(f"{generations_path}: rows of {wrong}, expected {method.name} (N = {n})")
    prompts = pd.read_parquet(prompts_path)
    missing = sorted(set(prompts["post_id"]) - set(generations["post_id"]))
    if missing:
        raise ValueError(f"{generations_path}: no generation for post_id {missing[:5]}")
    reference, tokenizer = get_method("sft").load_model(sft_path)
    reference.to(resolve_device(device)).eval()
    budget = min(settings.max_prompt_tokens, max_text_length(reference) - settings.max_new_tokens)
    rendered = render_prompts(prompts, tokenizer, PromptTemplate(template), budget)
    prompt_of = dict(zip(prompts["post_id"], rendered, strict=True))
    generations = generations[generations["post_id"].isin(prompt_of)].reset_index(drop=True)
    eos = require_eos_token(tokenizer)
    completions = [
        completion_token_ids(tokenizer, text) if finished else _text_ids(tokenizer, text)
        for text, finished in zip(generations["text"], generations["finished"], strict=True)
    ]
    logp = completion_logprobs(
        reference,
        tokenizer,
        [prompt_of[post_id] for post_id in generations["post_id"]],
        [ids or [eos] for ids in completions],
        batch_size=settings.batch_size,
    )
    empty = sum(not ids for ids in completions)
    if empty:
        log.warning(
            "%s: %d kept summaries are empty and unfinished; scored as EOS", method.name, empty
        )
    rows = generations.assign(
        kl=best_of_n_kl_estimate(n, logp),
        logp_sft=logp,
        unsupported=np.isneginf(logp),
    )
    grouped = rows.groupby(["post_id", "target_name", "target_reward"], sort=False, dropna=False)
    per_prompt = grouped.agg(
        n_samples=("kl", "size"),
        kl=("kl", "mean"),
        logp_sft=("logp_sft", "mean"),
        mean_tokens=("n_tokens", "mean"),
        n_finished=("finished", "sum"),
        n_unsupported=("unsupported", "sum"),
    ).reset_index()
    frame = per_prompt.assign(
        method=method.name,
        estimator=BEST_OF_N_ESTIMATE,
        kl_k3=np.nan,
        kl_bound=best_of_n_kl_bound(n),
        logp_policy=np.nan,
    )
    return _write([frame], output_path, method.name)


def _text_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _write(frames, output_path, name) -> pd.DataFrame:
    table = pd.concat(frames, ignore_index=True)[KL_COLUMNS].astype(
        {
            "target_reward": "float64",
            "n_samples": "int64",
            "n_finished": "int64",
            "n_unsupported": "int64",
            "kl_bound": "float64",
        }
    )
    write_parquet(output_path, table)
    # The mean only: the interval over prompts is `rewardcond.kl.summary.summarize_kl`'s, in
    # `publish` (kept out of this stage so that editing the statistics reruns no sampling).
    grouped = table.groupby("target_name", sort=False)
    for condition, mean in grouped["kl"].mean().items():
        log.info(
            "%s %s: KL %.4f nats (mean over %d prompts; bound %s)",
            name,
            condition,
            mean,
            grouped.size()[condition],
            table.loc[table["target_name"] == condition, "kl_bound"].iloc[0],
        )
    return table

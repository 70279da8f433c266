"""`rloo`: REINFORCE Leave-One-Out (Ahmadian et al. 2024), the online RLHF arm.

The policy starts from the `sft` model and is trained online with TRL's `RLOOTrainer`: for each
train prompt it samples `num_generations` summaries, the run's own reward model scores them (the
proxy the reward-conditioned methods learn from, through a `RewardModelScorer`, which sees
the full post as everywhere else), and each summary's advantage is its reward minus the mean
reward of the other summaries of its prompt. The reward is KL-regularised to the `sft` model:
TRL subtracts `beta` x the summed log-ratio policy/reference of the summary's tokens (first-order
KL estimate, nats per sequence), and its reference model is a second copy of the `sft` weights.
This replaces the paper's PPO (Stiennon et al. 2020), as TRL's own TL;DR example does.

EOS, as in TRL's TL;DR example: a summary is finished when the policy samples EOS within
`max_completion_length` tokens. A summary cut at that length is scored by the reward model as it
stands and `missing_eos_penalty` is subtracted (TRL's "EOS trick": Huang et al. 2024, "The N+
Implementation Details of RLHF with PPO"); its share is logged (`rloo/missing_eos`) at every
logging step. An empty summary (EOS first) cannot be scored (`Scorer` refuses empty text): it
gets no reward (TRL then leaves it out of its prompt's baseline and gives it zero advantage) and
its share is logged (`rloo/empty`).

Its training rows are the train posts of the `sft` training set (one row per post: its fields
and its prompt, post body shortened to `trainset.max_prompt_tokens` as for every method).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rewardcond.batching import count_tokens, max_text_length, require_eos_token
from rewardcond.distributed import launched_processes
from rewardcond.methods.base import Method, register

PROMPT_COLUMNS = ["post_id", "subreddit", "title", "post", "prompt"]


def completion_rewards(
    scorer,
    posts: Sequence[dict],
    texts: Sequence[str],
    completion_ids: Sequence[Sequence[int]],
    *,
    eos_token_id: int,
    missing_eos_penalty: float,
) -> tuple[list[float | None], np.ndarray, np.ndarray]:
    """The RL reward of each sampled summary.

    Args:
        scorer: a `RewardModelScorer` (`score(posts, texts)`: raw reward-model scores).
        posts: the template fields (subreddit, title, post) of each summary's post.
        texts: the decoded summaries (special tokens dropped).
        completion_ids: each summary's sampled token ids, its EOS included when it has one.
        missing_eos_penalty: subtracted from the score of a summary without EOS (reward-model
            units).

    Returns:
        (rewards, finished, empty): a reward per summary (raw reward-model score, minus the
        penalty where unfinished; None where the text is empty, which the reward model does not
        score), and boolean arrays of which summaries ended with EOS and which were empty.
    """
    if not len(posts) == len(texts) == len(completion_ids):
        raise ValueError(
            f"{len(posts)} posts, {len(texts)} texts and {len(completion_ids)} id lists"
        )
    finished = np.array([len(ids) > 0 and ids[-1] == eos_token_id for ids in completion_ids])
    empty = np.array([not text.strip() for text in texts], dtype=bool)
    scored = np.flatnonzero(~empty)
    rewards: list[float | None] = [None] * len(texts)
    if len(scored):
        scores = scorer.score([posts[i] for i in scored], [texts[i] for i in scored])
        for i, score in zip(scored, scores, strict=True):
            rewards[i] = float(score) - (0.0 if finished[i] else missing_eos_penalty)
    return rewards, finished, empty


class RewardModelReward:
    """A TRL reward function: `completion_rewards` of the run's reward model, with the shares of
    unfinished and empty summaries logged as `rloo/missing_eos` and `rloo/empty`."""

    __name__ = "reward_model"  # TRL names the reward's logged metrics after it

    def __init__(self, scorer, *, eos_token_id: int, missing_eos_penalty: float):
        self.scorer = scorer
        self.eos_token_id = eos_token_id
        self.missing_eos_penalty = missing_eos_penalty

    def __call__(
        self, prompts, completions, completion_ids, *, subreddit, title, post, **kwargs
    ) -> list[float | None]:
        posts = [
            {"subreddit": s, "title": t, "post": p}
            for s, t, p in zip(subreddit, title, post, strict=True)
        ]
        rewards, finished, empty = completion_rewards(
            self.scorer,
            posts,
            completions,
            completion_ids,
            eos_token_id=self.eos_token_id,
            missing_eos_penalty=self.missing_eos_penalty,
        )
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            log_metric("rloo/missing_eos", float((~finished).mean()))
            log_metric("rloo/empty", float(empty.mean()))
        return rewards


class PositionsFromMask:
    """Calls `model` with `position_ids` counted over the attention mask's real tokens.

    Prompts are left-padded; a model with learned absolute positions (GPT-2) called without
    `position_ids` places a padded row's tokens at positions shifted by its padding, and so
    scores them differently from how `generate` sampled them (it counts positions over the
    mask). TRL 1.16's RLOO log-probability forwards pass none (cf. huggingface/trl#6800 for
    its online DPO); for rotary models the shift was harmless, for GPT-2 it is not.
    """

    def __init__(self, model):
        self.model = model

    def __call__(self, *, input_ids, attention_mask, **kwargs):
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )


def rloo_trainer_class():
    """`trl.RLOOTrainer` with two changes, for text prompts:

    - its log-probabilities (policy, old policy, reference) are computed with the positions
      generation used (`PositionsFromMask`);
    - it generates its samples `rollout_batch_size` prompts at a time. TRL 1.16 generates a
      process's whole batch of samples in one `generate` call, whose KV cache grows with the
      batch (GPT-2 small, 4096 samples of up to 560 tokens: about 85 GB in bf16); TRL's TL;DR
      example generated 16 at a time (its `local_rollout_forward_batch_size`). Only how many
      sequences are decoded at once changes, not what is sampled from.
    """
    from trl import RLOOTrainer

    class RolloutBatchedRLOOTrainer(RLOOTrainer):
        rollout_batch_size: int | None = None

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, *a, **kw):
            return super()._get_per_token_logps_and_entropies(
                PositionsFromMask(model), input_ids, attention_mask, *a, **kw
            )

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
            size = self.rollout_batch_size or len(prompt_ids)
            if images is not None or multimodal_fields:
                raise ValueError("rloo generates from text prompts only")
            completions = []
            for start in range(0, len(prompt_ids), size):
                chunk = prompt_ids[start : start + size]
                completions += super()._generate_single_turn(chunk, None, {})
            return completions

    return RolloutBatchedRLOOTrainer


@register
class RLOOMethod(Method):
    """RLOO from the `sft` model against the run's reward model (TRL `RLOOTrainer`).

    Options (`method_options.rloo`; defaults are those of TRL's TL;DR RLOO example, see the
    config schema):
    - `num_generations`: summaries sampled per prompt (>= 2: the leave-one-out baseline needs
      a sibling);
    - `beta`: KL coefficient towards sft (>= 0);
    - `temperature`: of the sampling (top-p 1, no top-k);
    - `max_completion_length`: tokens sampled before a summary counts as unfinished; None until
      the workflow sets it to generate.max_new_tokens, so that training and evaluation cut at
      the same length;
    - `missing_eos_penalty`: subtracted from an unfinished summary's reward (>= 0);
    - `num_iterations`: optimisation passes over each batch of samples (PPO's epochs);
    - `mini_batches`: optimizer steps each batch of samples is split into;
    - `rollout_batch_size`: samples decoded at once per process (a memory limit).
    One batch of samples is `mini_batches` x `train.global_batch_size` summaries. Optimisation
    settings come from `train` (+ `train.overrides.rloo`); `global_batch_size` counts summaries
    and must be a multiple of `num_generations`.
    """

    name = "rloo"
    sources = ("reference",)  # the posts sft trains on, one row each
    trains_online = True
    # TRL's per-step metrics (`reward`: the mean reward before the KL penalty; `kl`: the mean
    # per-token log-ratio to sft), then the shares of unfinished and empty summaries.
    logged_metrics = (
        "reward",
        "reward_std",
        "kl",
        "entropy",
        "completions/mean_length",
        "completions/clipped_ratio",
        "rloo/missing_eos",
        "rloo/empty",
    )

    def __init__(
        self,
        num_generations: int = 2,
        beta: float = 0.03,
        temperature: float = 0.7,
        max_completion_length: int | None = None,
        missing_eos_penalty: float = 1.0,
        num_iterations: int = 2,
        mini_batches: int = 2,
        rollout_batch_size: int = 16,
    ):
        problems = [
            f"num_generations must be >= 2, got {num_generations}" if num_generations < 2 else "",
            f"beta must be >= 0, got {beta}" if beta < 0 else "",
            f"temperature must be > 0, got {temperature}" if temperature <= 0 else "",
            f"max_completion_length must be >= 1, got {max_completion_length}"
            if max_completion_length is not None and max_completion_length < 1
            else "",
            f"missing_eos_penalty must be >= 0, got {missing_eos_penalty}"
            if missing_eos_penalty < 0
            else "",
            f"num_iterations must be >= 1, got {num_iterations}" if num_iterations < 1 else "",
            f"mini_batches must be >= 1, got {mini_batches}" if mini_batches < 1 else "",
            f"rollout_batch_size must be >= 1, got {rollout_batch_size}"
            if rollout_batch_size < 1
            else "",
        ]
        problems = [problem for problem in problems if problem]
        if problems:
            raise ValueError("method_options.rloo: " + "; ".join(problems))
        self.num_generations = int(num_generations)
        self.beta = float(beta)
        self.temperature = float(temperature)
        self.max_completion_length = max_completion_length
        self.missing_eos_penalty = float(missing_eos_penalty)
        self.num_iterations = int(num_iterations)
        self.mini_batches = int(mini_batches)
        self.rollout_batch_size = int(rollout_batch_size)

    def options(self) -> dict[str, Any]:
        return {
            "num_generations": self.num_generations,
            "beta": self.beta,
            "temperature": self.temperature,
            "max_completion_length": self.max_completion_length,
            "missing_eos_penalty": self.missing_eos_penalty,
            "num_iterations": self.num_iterations,
            "mini_batches": self.mini_batches,
            "rollout_batch_size": self.rollout_batch_size,
        }

    def label_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """One row per post (its fields and rendered prompt); the completions are not used."""
        return rows.drop_duplicates("post_id")[PROMPT_COLUMNS].reset_index(drop=True)

    def online_trainer(self, model, tokenizer, prompts, *, args, callbacks, scorer):
        """An `RLOOTrainer` over the prompt rows `prompts` (columns of `label_rows`), rewarded by
        `scorer` (a `RewardModelScorer`); `args` holds `TrainingArguments` keyword
        arguments. The reference model is loaded again from the folder `model` was loaded
        from (the sft model).

        Raises:
            ValueError: naming the keys, if `max_completion_length` is None, if
                `train.global_batch_size` is not a multiple of `num_generations`, or if the
                longest prompt + `max_completion_length` exceeds the model's context.
        """
        from datasets import Dataset
        from trl import RLOOConfig

        if self.max_completion_length is None:
            raise ValueError(
                "method_options.rloo.max_completion_length is null: the workflow sets it to "
                "generate.max_new_tokens; outside it, pass a number of tokens"
            )
        eos = require_eos_token(tokenizer)
        longest = max(count_tokens(tokenizer, prompt) for prompt in prompts["prompt"])
        context = max_text_length(model)
        if longest + self.max_completion_length > context:
            raise ValueError(
                f"the longest rloo prompt ({longest} tokens) + method_options.rloo."
                f"max_completion_length ({self.max_completion_length}) exceeds the model's "
                f"context of {context} tokens; lower trainset.max_prompt_tokens or "
                "max_completion_length"
            )
        global_batch = (
            args["per_device_train_batch_size"]
            * args["gradient_accumulation_steps"]
            * launched_processes()
        )
        if global_batch % self.num_generations:
            raise ValueError(
                f"train.global_batch_size ({global_batch}) counts sampled summaries and must be "
                f"a multiple of method_options.rloo.num_generations ({self.num_generations}), "
                "the summaries sampled per prompt"
            )
        config = RLOOConfig(
            **args,
            num_generations=self.num_generations,
            beta=self.beta,
            temperature=self.temperature,
            top_p=1.0,
            top_k=0,
            max_completion_length=self.max_completion_length,
            num_iterations=self.num_iterations,
            steps_per_generation=self.mini_batches * args["gradient_accumulation_steps"],
            # The sampling policy and the trained one must give the same log-probabilities.
            disable_dropout=True,
            # Stop at the tokenizer's EOS only, as generation at evaluation does.
            generation_kwargs={"eos_token_id": eos},
        )
        reward = RewardModelReward(
            scorer, eos_token_id=eos, missing_eos_penalty=self.missing_eos_penalty
        )
        columns = ["prompt", "subreddit", "title", "post"]
        trainer = rloo_trainer_class()(
            model=model,
            reward_funcs=reward,
            args=config,
            train_dataset=Dataset.from_pandas(prompts[columns], preserve_index=False),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
        trainer.rollout_batch_size = self.rollout_batch_size
        return trainer

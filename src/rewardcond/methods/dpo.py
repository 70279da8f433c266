"""`dpo`: Direct Preference Optimization (Rafailov et al. 2023), the offline RLHF baseline.

It starts from the `sft` model and learns from the train-split human comparisons with TRL's
`DPOTrainer`; the frozen reference policy is a second copy of the same `sft` weights. A pair is
kept when both of its summaries passed the training-set filters (length bounds, prompt fits).

DPO never trains on a cut completion: TRL's collator cuts every sequence longer than `max_length`
at its end (`truncation_mode="keep_start"`), which would cut the completion and its EOS. So, as
for the other methods (`PromptTemplate.render_truncated`), the post body of each pair's prompt is
shortened until prompt + its longer completion + EOS fit `max_length`, and the sequences TRL
tokenized are checked before training.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rewardcond.batching import count_tokens, require_eos_token
from rewardcond.methods.base import Method, register
from rewardcond.tables import comparison_pairs

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


def preference_pairs(
    rows: pd.DataFrame, comparisons: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(post_id, prompt, chosen, rejected) of each train comparison whose two summaries are
    among the filtered training `rows` (matched on post and stripped text); skips are counted.

    The labeller's pick comes first (`rewardcond.tables.comparison_pairs`, which refuses a
    `choice` other than 0 or 1).
    """
    pairs = comparison_pairs(comparisons)[(comparisons["split"] == "train").to_numpy()]
    kept = set(zip(rows["post_id"], rows["completion"].str.strip(), strict=True))
    prompts = rows.drop_duplicates("post_id").set_index("post_id")["prompt"]
    both_kept = [
        (post, chosen.strip()) in kept and (post, rejected.strip()) in kept
        for post, chosen, rejected in zip(
            pairs["post_id"], pairs["chosen"], pairs["rejected"], strict=True
        )
    ]
    out = pairs[both_kept].reset_index(drop=True)
    out.insert(1, "prompt", out["post_id"].map(prompts))
    counts = {
        "train_comparisons": len(pairs),
        "summary_filtered_out": len(pairs) - len(out),
        "pairs": len(out),
    }
    return out, counts


def fit_prompts(
    pairs: pd.DataFrame, posts: pd.DataFrame, tokenizer, template, max_length: int
) -> tuple[pd.DataFrame, int]:
    """`pairs` with each prompt shortened (post body only) so that prompt + the pair's longer
    completion + EOS take at most `max_length` tokens; a prompt that fits is kept as it is.

    Args:
        pairs: columns post_id, prompt, chosen, rejected (`preference_pairs`).
        posts: the template fields (subreddit, title, post) indexed by post_id.
        template: a `PromptTemplate`.

    Returns:
        (pairs, number of prompts shortened).

    Raises:
        ValueError: naming `method_options.dpo.max_length`, when it cannot hold the longest
            completion + EOS + the shortest prompt (its post body cut away entirely).
    """
    require_eos_token(tokenizer)
    tokens = {
        column: [
            len(ids)
            for ids in tokenizer(list(pairs[column]), add_special_tokens=False)["input_ids"]
        ]
        for column in ("chosen", "rejected")
    }
    longest = [max(c, r) + 1 for c, r in zip(tokens["chosen"], tokens["rejected"], strict=True)]
    fields = posts.loc[pairs["post_id"], ["subreddit", "title"]]
    shortest = [
        count_tokens(tokenizer, template.render(subreddit=subreddit, title=title, post=""))
        for subreddit, title in fields.itertuples(index=False)
    ]
    needed = [c + p for c, p in zip(longest, shortest, strict=True)]
    over = [i for i, n in enumerate(needed) if n > max_length]
    if over:
        worst = max(over, key=needed.__getitem__)
        raise ValueError(
            f"method_options.dpo.max_length={max_length} cannot hold {len(over)} of {len(pairs)} "
            f"pairs without cutting a completion: e.g. pair {worst} (post "
            f"{pairs['post_id'].iloc[worst]!r}) needs its longer completion + EOS "
            f"({longest[worst]} tokens) + its shortest prompt, the post body cut away "
            f"({shortest[worst]} tokens) = {needed[worst]}; raise max_length to at least "
            f"{max(needed)} or lower trainset.max_completion_tokens"
        )
    prompts = list(pairs["prompt"])
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    shortened = 0
    for i, (post_id, room) in enumerate(zip(pairs["post_id"], longest, strict=True)):
        room = max_length - room
        if lengths[i] > room:
            post = posts.loc[post_id]
            prompts[i] = template.render_truncated(
                tokenizer, room, subreddit=post["subreddit"], title=post["title"], post=post["post"]
            )
            shortened += 1
    return pairs.assign(prompt=prompts), shortened


def check_tokenized(dataset, n_pairs: int, eos_token_id: int, max_length: int | None) -> None:
    """Check the pairs as TRL's `DPOTrainer` tokenized them: none dropped, both completions end
    with EOS, and prompt + completion fit `max_length` (so its collator cuts nothing).

    Raises:
        ValueError: naming `method_options.dpo.max_length` and the first offending pair.
    """
    if len(dataset) != n_pairs:
        raise ValueError(
            f"DPOTrainer kept {len(dataset)} of {n_pairs} pairs (it drops a pair whose prompt "
            f"fills method_options.dpo.max_length={max_length}); build the trainset with the "
            "same method_options.dpo"
        )
    prompts = dataset["prompt_ids"]
    for side in ("chosen", "rejected"):
        for i, (prompt, ids) in enumerate(zip(prompts, dataset[f"{side}_ids"], strict=True)):
            if not ids or ids[-1] != eos_token_id:
                raise ValueError(f"DPOTrainer tokenized pair {i}'s {side} completion without EOS")
            if max_length is not None and len(prompt) + len(ids) > max_length:
                raise ValueError(
                    f"pair {i}: prompt {len(prompt)} + {side} completion with EOS {len(ids)} = "
                    f"{len(prompt) + len(ids)} tokens > method_options.dpo.max_length="
                    f"{max_length}, which would cut the completion; build the trainset with the "
                    "same method_options.dpo"
                )


@register
class DPOMethod(Method):
    """DPO from the `sft` model on train-split comparisons (TRL `DPOTrainer`).

    Options: `beta` (strength of the pull towards the reference, default 0.1), `loss_type`
    (sigmoid = the paper's DPO, hinge, ipo, robust; default sigmoid), `max_length` (prompt +
    completion + EOS tokens; each pair's prompt is shortened to fit, a completion is never cut;
    None, the default, keeps the prompts as the training set rendered them and cuts nothing; the
    workflow resolves its `null` to trainset.max_prompt_tokens + max_completion_tokens + 1).
    Optimisation settings come from `train` (+ `train.overrides.dpo`).
    """

    name = "dpo"
    sources = ("comparison",)
    learns_from_scores = False
    learns_from_pairs = True

    def __init__(
        self, beta: float = 0.1, loss_type: str = "sigmoid", max_length: int | None = None
    ):
        if beta <= 0:
            raise ValueError(f"method_options.dpo.beta must be > 0, got {beta}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(
                f"method_options.dpo.loss_type must be one of {LOSS_TYPES}, got {loss_type!r}"
            )
        if max_length is not None and max_length < 2:
            raise ValueError(f"method_options.dpo.max_length must be >= 2, got {max_length}")
        self.beta = beta
        self.loss_type = loss_type
        self.max_length = max_length

    def options(self) -> dict[str, Any]:
        return {"beta": self.beta, "loss_type": self.loss_type, "max_length": self.max_length}

    def pair_rows(self, rows, comparisons, *, tokenizer, template):
        """`preference_pairs`, each prompt then shortened to fit `max_length` (`fit_prompts`);
        the counts gain `prompt_shortened`."""
        pairs, counts = preference_pairs(rows, comparisons)
        if self.max_length is not None and len(pairs):
            posts = rows.drop_duplicates("post_id").set_index("post_id")
            pairs, counts["prompt_shortened"] = fit_prompts(
                pairs, posts, tokenizer, template, self.max_length
            )
        return pairs, counts

    def pair_trainer(self, model, tokenizer, pairs, *, base_path, args, callbacks):
        """A `DPOTrainer` over `pairs`; the reference model is loaded again from `base_path`.

        Raises:
            ValueError: if a pair does not fit `max_length` as TRL tokenized it (`check_tokenized`).
        """
        from datasets import Dataset
        from transformers import AutoModelForCausalLM
        from trl import DPOConfig, DPOTrainer

        config = DPOConfig(
            **args,
            beta=self.beta,
            loss_type=[self.loss_type],
            max_length=self.max_length,
        )
        columns = ["prompt", "chosen", "rejected"]
        trainer = DPOTrainer(
            model=model,
            ref_model=AutoModelForCausalLM.from_pretrained(base_path),
            args=config,
            train_dataset=Dataset.from_pandas(pairs[columns], preserve_index=False),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
        check_tokenized(
            trainer.train_dataset, len(pairs), require_eos_token(tokenizer), self.max_length
        )
        return trainer

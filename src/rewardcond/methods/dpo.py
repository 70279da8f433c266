"""`dpo`: Direct Preference Optimization (Rafailov et al. 2023), the offline RLHF baseline.

It starts from the `sft` model and learns from the train-split human comparisons with TRL's
`DPOTrainer`; the frozen reference policy is a second copy of the same `sft` weights. A pair is
kept when both of its summaries passed the training-set filters (length bounds, prompt fits).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rewardcond.methods.base import Method, register

PAIR_COLUMNS = ["post_id", "prompt", "chosen", "rejected"]
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


def preference_pairs(
    rows: pd.DataFrame, comparisons: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(post_id, prompt, chosen, rejected) of each train comparison whose two summaries are
    among the filtered training `rows` (matched on post and stripped text); skips are counted.

    `choice` is the index (0/1) of the summary the labeller preferred.
    """
    bad = ~comparisons["choice"].isin([0, 1])
    if bad.any():
        raise ValueError(
            f"comparisons column 'choice' must be 0 or 1; row {int(bad.idxmax())} has "
            f"{comparisons['choice'][bad].iloc[0].item()!r}"
        )
    train = comparisons[comparisons["split"] == "train"]
    kept = set(zip(rows["post_id"], rows["completion"].str.strip(), strict=True))
    prompts = rows.drop_duplicates("post_id").set_index("post_id")["prompt"]
    both_kept = [
        (post, a.strip()) in kept and (post, b.strip()) in kept
        for post, a, b in zip(train["post_id"], train["summary_0"], train["summary_1"], strict=True)
    ]
    pairs = train[both_kept]
    first_wins = pairs["choice"].to_numpy() == 0
    out = pd.DataFrame(
        {
            "post_id": pairs["post_id"].to_numpy(),
            "prompt": pairs["post_id"].map(prompts).to_numpy(),
            "chosen": pairs["summary_0"].where(first_wins, pairs["summary_1"]).to_numpy(),
            "rejected": pairs["summary_1"].where(first_wins, pairs["summary_0"]).to_numpy(),
        }
    )
    counts = {
        "train_comparisons": len(train),
        "summary_filtered_out": len(train) - len(out),
        "pairs": len(out),
    }
    return out, counts


@register
class DPOMethod(Method):
    """DPO from the `sft` model on train-split comparisons (TRL `DPOTrainer`).

    Options: `beta` (strength of the pull towards the reference, default 0.1), `loss_type`
    (sigmoid = the paper's DPO, hinge, ipo, robust; default sigmoid), `max_length` (prompt +
    completion tokens, default 512; a pair whose prompt alone reaches it is an error, since TRL
    would drop it silently). Optimisation settings come from `train` (+ `train.overrides.dpo`).
    """

    name = "dpo"
    sources = ("comparison",)
    learns_from_pairs = True

    def __init__(self, beta: float = 0.1, loss_type: str = "sigmoid", max_length: int = 512):
        if beta <= 0:
            raise ValueError(f"method_options.dpo.beta must be > 0, got {beta}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(
                f"method_options.dpo.loss_type must be one of {LOSS_TYPES}, got {loss_type!r}"
            )
        self.beta = beta
        self.loss_type = loss_type
        self.max_length = max_length

    def options(self) -> dict[str, Any]:
        return {"beta": self.beta, "loss_type": self.loss_type, "max_length": self.max_length}

    def pair_rows(self, rows, comparisons):
        return preference_pairs(rows, comparisons)

    def pair_trainer(self, model, tokenizer, pairs, *, base_path, args, callbacks):
        """A `DPOTrainer` over `pairs`; the reference model is loaded again from `base_path`."""
        from datasets import Dataset
        from transformers import AutoModelForCausalLM
        from trl import DPOConfig, DPOTrainer

        lengths = [len(ids) for ids in tokenizer(list(pairs["prompt"]))["input_ids"]]
        too_long = [i for i, n in enumerate(lengths) if n >= self.max_length]
        if too_long:
            raise ValueError(
                f"{len(too_long)} prompts fill method_options.dpo.max_length={self.max_length} "
                f"tokens (e.g. pair {too_long[0]}: {lengths[too_long[0]]} tokens); DPOTrainer "
                "would drop them: lower trainset.max_prompt_tokens or raise max_length"
            )
        config = DPOConfig(
            **args,
            beta=self.beta,
            loss_type=[self.loss_type],
            max_length=self.max_length,
        )
        columns = ["prompt", "chosen", "rejected"]
        return DPOTrainer(
            model=model,
            ref_model=AutoModelForCausalLM.from_pretrained(base_path),
            args=config,
            train_dataset=Dataset.from_pandas(pairs[columns], preserve_index=False),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )

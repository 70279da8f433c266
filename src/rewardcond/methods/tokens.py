"""`tokens`: discrete conditioning on a control token (Korbak et al. 2023, conditional training).

Rows at or above a reward quantile of the training rows start with `<|good|>`, the others with
`<|bad|>`; both are new special tokens with new embedding rows. Generation asks for `<|good|>`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rewardcond.methods.base import NO_TARGET, Condition, Example, Method, register

GOOD = "<|good|>"
BAD = "<|bad|>"


@register
class TokensMethod(Method):
    """Control-token conditioning. Options: `good_quantile` (share of rows below the threshold,
    in (0, 1); default 0.5 labels the better half `<|good|>`)."""

    name = "tokens"

    def __init__(self, good_quantile: float = 0.5) -> None:
        if not 0.0 < good_quantile < 1.0:
            raise ValueError(
                f"method_options.tokens.good_quantile must be in (0, 1), got {good_quantile}"
            )
        self.good_quantile = good_quantile

    def options(self) -> dict[str, Any]:
        return {"good_quantile": self.good_quantile}

    def threshold(self, rewards) -> float:
        """The reward at or above which a row is `<|good|>`."""
        return float(pd.Series(rewards, dtype="float64").quantile(self.good_quantile))

    def label_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        good = rows["reward"] >= self.threshold(rows["reward"])
        return rows.assign(control=good.map({True: GOOD, False: BAD}))

    def example(self, row: Any) -> Example:
        return Example(row.control + row.prompt, row.completion)

    def build_model(self, base_path: str, trainset: pd.DataFrame):
        model, tokenizer = super().build_model(base_path, trainset)
        added = tokenizer.add_tokens([GOOD, BAD], special_tokens=True)
        if added != 2:
            raise ValueError(f"the tokenizer of {base_path} already has {GOOD} or {BAD}")
        model.resize_token_embeddings(len(tokenizer))
        return model, tokenizer

    def conditions(self, targets: list[dict]) -> list[Condition]:
        return [Condition(NO_TARGET.name, prefix=GOOD)]

"""`text`: the reward written in the prompt (Rewards-in-Context, SteerLM, OpenRLHF conditional SFT).

The scaled reward goes on its own line in front of the prompt, e.g. `REWARD: 1.25`, at a fixed
precision. Same rows, scaler and targets as `scalar`: the two differ only in how the reward gets
in (a learned embedding slot versus digits the tokenizer reads).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rewardcond.methods.base import Condition, Example, Method, register

#: The model config attribute that carries the fitted scaler (saved with `save_pretrained`).
SCALER_ATTRIBUTE = "reward_text_scaler"


def reward_line(scaled_reward: float, precision: int) -> str:
    """`REWARD: <value>\\n` with `precision` decimals; a value that rounds to zero reads `0.00`."""
    text = f"{scaled_reward:.{precision}f}"
    if float(text) == 0.0:
        text = f"{0.0:.{precision}f}"
    return f"REWARD: {text}\n"


@register
class TextMethod(Method):
    """A plain causal LM that reads the scaled target reward as text in front of the prompt.

    Options: `scaler` (identity|standardize|minmax|quantile, default standardize, as `scalar`),
    `precision` (decimals of the written reward, default 2).
    """

    name = "text"
    conditioned = True

    def __init__(self, scaler: str = "standardize", precision: int = 2) -> None:
        if not isinstance(precision, int) or precision < 0:
            raise ValueError(
                f"method_options.text.precision must be an integer >= 0, got {precision!r}"
            )
        self.scaler_kind = scaler
        self.precision = precision
        self.scaler = None

    def options(self) -> dict[str, Any]:
        return {"scaler": self.scaler_kind, "precision": self.precision}

    def prefix(self, reward: float) -> str:
        """The line put in front of the prompt for a raw `reward`."""
        if self.scaler is None:
            raise RuntimeError("text: build_model or load_model first (they set the scaler)")
        return reward_line(float(self.scaler.transform([reward])[0]), self.precision)

    def example(self, row: Any) -> Example:
        return Example(self.prefix(row.reward) + row.prompt, row.completion)

    def build_model(self, base_path: str, trainset: pd.DataFrame):
        from rewardcond.scalers import make_scaler

        model, tokenizer = super().build_model(base_path, trainset)
        self.scaler = make_scaler(self.scaler_kind).fit(trainset["reward"].to_numpy())
        setattr(model.config, SCALER_ATTRIBUTE, self.scaler.to_dict())
        return model, tokenizer

    def load_model(self, model_path: str):
        from rewardcond.scalers import RewardScaler

        model, tokenizer = super().load_model(model_path)
        state = getattr(model.config, SCALER_ATTRIBUTE, None)
        if state is None:
            raise ValueError(f"{model_path} has no {SCALER_ATTRIBUTE} in its config.json")
        self.scaler = RewardScaler.from_dict(state)
        return model, tokenizer

    def conditions(self, targets: list[dict]) -> list[Condition]:
        return [Condition(t["name"], float(t["value"]), self.prefix(t["value"])) for t in targets]

"""`scalar`: the reward slot. A learned `Linear(1, hidden)` embeds the scaled reward in front of
the text; trained on every train-split completion at its own reward, asked for targets later."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rewardcond.methods.base import Method, register


@register
class ScalarMethod(Method):
    """Reward-conditioned LM (`RewardConditionedLM`) with a scaler fitted on the train rewards.

    Options: `scaler` (identity|standardize|minmax|quantile, default standardize).
    """

    name = "scalar"
    conditioned = True

    def __init__(self, scaler: str = "standardize") -> None:
        self.scaler = scaler

    def options(self) -> dict[str, Any]:
        return {"scaler": self.scaler}

    def build_model(self, base_path: str, trainset: pd.DataFrame):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rewardcond.modeling import RewardConditionedLM
        from rewardcond.scalers import make_scaler

        scaler = make_scaler(self.scaler).fit(trainset["reward"].to_numpy())
        base = AutoModelForCausalLM.from_pretrained(base_path)
        model = RewardConditionedLM.from_base(base, scaler=scaler)
        return model, AutoTokenizer.from_pretrained(base_path)

    def load_model(self, model_path: str):
        from transformers import AutoTokenizer

        from rewardcond.modeling import RewardConditionedLM

        return RewardConditionedLM.from_pretrained(model_path), AutoTokenizer.from_pretrained(
            model_path
        )

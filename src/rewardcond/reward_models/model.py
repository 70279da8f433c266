"""A reward model trained on human (or synthetic) comparisons, as in Stiennon et al. (2020).

A causal LM body (any `AutoModel` backbone, e.g. GPT-2) reads `prompt + summary + EOS`; a linear
head maps the hidden state of the last *real* token to a scalar reward. The last real token is
found from the attention mask, never from token ids, because GPT-2-style tokenizers pad with EOS
(so `GPT2ForSequenceClassification`, which looks for the first pad id, would stop at our EOS) and
padding may sit on either side. Training minimises -log sigmoid(r_chosen - r_rejected); afterwards
the head's bias is shifted so that the reference summaries of the training posts score 0 on average
(the loss cannot see a constant, so the bias carries only that normalisation).

The model is registered with `AutoConfig` / `AutoModelForSequenceClassification`: it returns
`logits` of shape (batch, 1) like any single-label sequence classifier, so scoring code treats it
and a pretrained hub reward model the same way.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput


class RewardModelConfig(PreTrainedConfig):
    """Config of `RewardModel`: the backbone's own config nested as `text_config`.

    `context_length`: the most tokens (prompt + summary + EOS) the model reads, posts shortened to
    fit; set at training time so that scoring later shortens posts exactly as training did (None:
    the backbone's context).
    """

    model_type = "rewardcond_reward_model"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="gpt2")
    }

    text_config: dict | PreTrainedConfig | None = None
    context_length: int | None = None


class RewardModel(PreTrainedModel):
    """A transformer backbone plus a scalar head read at the last non-pad token.

    `forward` returns `SequenceClassifierOutput(logits=rewards[:, None])`, rewards of shape
    (batch,); training computes `pairwise_loss` on them itself.
    """

    config_class = RewardModelConfig
    base_model_prefix = "backbone"
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: RewardModelConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.text_config)
        self.score = nn.Linear(config.text_config.hidden_size, 1)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The paper's head init: N(0, 1/(d_model + 1)); the bias holds only the normalisation.
        if module is self.score:
            nn.init.normal_(module.weight, std=1.0 / math.sqrt(module.in_features + 1))
            nn.init.zeros_(module.bias)
        else:
            self.backbone._init_weights(module)

    @classmethod
    def from_base(cls, base: PreTrainedModel) -> RewardModel:
        """Wrap the body of a causal LM (its LM head is dropped) with a freshly initialised head."""
        body = base.base_model
        config = RewardModelConfig(text_config=body.config.to_dict())
        config.text_config._attn_implementation = body.config._attn_implementation
        model = cls(config)
        model.backbone.load_state_dict(body.state_dict())
        return model.to(dtype=next(body.parameters()).dtype)

    @property
    def max_length(self) -> int | None:
        """Tokens read per input: `config.context_length`, else the backbone's position table."""
        text = self.config.text_config
        positions = getattr(text, "n_positions", None) or getattr(
            text, "max_position_embeddings", None
        )
        return self.config.context_length or positions

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            # Count real tokens only, so that left padding does not shift absolute positions.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **kwargs,
        ).last_hidden_state
        last = last_token_index(attention_mask)
        rewards = self.score(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        return SequenceClassifierOutput(logits=rewards)


AutoConfig.register(RewardModelConfig.model_type, RewardModelConfig)
AutoModelForSequenceClassification.register(RewardModelConfig, RewardModel)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position whose mask is 1, per row (works for left and right padding)."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (attention_mask.long() * (positions + 1)).argmax(-1)


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected) (the Bradley-Terry preference loss)."""
    return -nn.functional.logsigmoid(chosen - rejected).mean()

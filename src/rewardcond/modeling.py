"""A causal LM conditioned on a scalar target reward through one embedding slot before the text.

`RewardConditionedLM` wraps any Hugging Face causal LM (the *base*). A learned `Linear(1, hidden)`
maps the scaled target reward to one input embedding, placed physically first in every row:

    physical sequence   [slot, pad, pad, t1, t2, t3]      (left-padded text)
    attention mask      [1,    0,   0,   1,  1,  1 ]
    positions           [0,    -,   -,   1,  2,  3 ]

The slot is at position 0 and the first text token at 1 in every row, whatever the padding. The
caller works in text coordinates only: `input_ids`, `attention_mask`, `position_ids` (0 = first
text token, as for the base) and `labels` describe the text, and logits come back aligned with
`input_ids`; the model adds the slot, shifts masks and positions, and drops the slot's position
before the LM head. With a KV cache the slot lives in the cache after the first step, so later
steps only shift the mask and positions.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.cache_utils import Cache
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import can_return_tuple

from rewardcond.scalers import IdentityScaler, RewardScaler

SCALER_FILE = "scaler.json"


class RewardConditionedConfig(PreTrainedConfig):
    """Configuration of a `RewardConditionedLM`.

    Args:
        text_config: the base causal LM's config (a `PreTrainedConfig` or its dict with
            `model_type`); GPT-2 by default.
        reward_scaler: `RewardScaler.to_dict()` of the scaler applied to raw target rewards
            (None = identity).
    """

    model_type = "reward_conditioned"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="gpt2")
    }

    text_config: dict | PreTrainedConfig | None = None
    reward_scaler: dict | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The base's own config decides weight tying; mirrored for code that reads it at the top
        # level (as transformers' composite configs, e.g. Llava, do).
        self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))


class RewardConditionedLM(PreTrainedModel, GenerationMixin):
    """A causal LM conditioned on a scalar target reward (raw reward-model units).

    Build it with `from_base(model, scaler)`, `from_pretrained(path)` (also through
    `AutoModelForCausalLM`), or `RewardConditionedLM(config)` for a randomly initialised base.

    Attributes:
        language_model: the wrapped base causal LM (its modules, config and LM head).
        reward_embedding: the `Linear(1, hidden)` map from the scaled reward to the slot.
        scaler: the `RewardScaler` applied to raw target rewards; assign a fitted one
            (`model.scaler = make_scaler("standardize").fit(train_rewards)`). It is saved into
            `config.json` and `scaler.json` by `save_pretrained`.
    """

    config_class = RewardConditionedConfig
    base_model_prefix = "language_model"
    input_modalities = ("text",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(
        self, config: RewardConditionedConfig, language_model: PreTrainedModel | None = None
    ):
        super().__init__(config)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.language_model = language_model
        # One config object for the base, so that e.g. resize_token_embeddings is saved correctly.
        self.config.text_config = language_model.config
        hidden_size = language_model.get_input_embeddings().embedding_dim
        self.reward_embedding = nn.Linear(1, hidden_size)
        # The scaler applied to raw target rewards; written into the config by save_pretrained.
        self.scaler: RewardScaler = (
            RewardScaler.from_dict(config.reward_scaler)
            if config.reward_scaler
            else IdentityScaler()
        )
        self.loss_type = "ForCausalLM"
        self.post_init()

    @classmethod
    def from_base(
        cls, base_model: PreTrainedModel, scaler: RewardScaler | None = None
    ) -> RewardConditionedLM:
        """Wrap a loaded causal LM (its modules are shared, not copied) with a new reward map."""
        config = RewardConditionedConfig(
            text_config=base_model.config,
            reward_scaler=(scaler or IdentityScaler()).to_dict(),
            # The config's post-init resets the (shared) base config's attention implementation;
            # keep the base's own, or its mask builder ignores padding without any error.
            attn_implementation=base_model.config._attn_implementation,
        )
        model = cls(config, language_model=base_model)
        model.reward_embedding.to(device=base_model.device, dtype=base_model.dtype)
        model.generation_config = copy.deepcopy(base_model.generation_config)
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.reward_embedding:
            std = getattr(self.config.text_config, "initializer_range", None) or 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def resize_token_embeddings(self, *args, **kwargs) -> nn.Embedding:
        """Resize the base's token embeddings (and its LM head); see the transformers method."""
        return self.language_model.resize_token_embeddings(*args, **kwargs)

    def check_target_rewards(self, target_rewards: Any, batch_size: int) -> torch.Tensor:
        """Validate raw target rewards (shape `(batch_size,)`, finite) and return them as float64.

        Raises:
            ValueError: naming `target_rewards`, if they are missing, of the wrong shape or length,
                or not finite.
        """
        if target_rewards is None:
            raise ValueError(
                "target_rewards is required: a float tensor of shape (batch_size,) in raw "
                "reward-model units (with HF Trainer, keep the collator's `target_reward` column "
                "by setting remove_unused_columns=False)"
            )
        rewards = torch.as_tensor(target_rewards).detach().to(torch.float64)
        if rewards.shape != (batch_size,):
            raise ValueError(
                f"target_rewards must have shape ({batch_size},) (one per row of input_ids); "
                f"got shape {tuple(rewards.shape)}"
            )
        if not torch.isfinite(rewards).all():
            raise ValueError(f"target_rewards must be finite; got {rewards.tolist()}")
        return rewards

    def reward_slot(self, target_rewards: Any, batch_size: int) -> torch.Tensor:
        """The slot embeddings `(batch_size, 1, hidden)` for raw target rewards."""
        rewards = self.check_target_rewards(target_rewards, batch_size)
        scaled = self.scaler.transform(rewards.cpu().numpy()).astype(np.float32)
        weight = self.reward_embedding.weight
        scaled = torch.from_numpy(scaled).to(device=weight.device, dtype=weight.dtype)
        return self.reward_embedding(scaled[:, None, None])

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        target_rewards: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Run the base on `[slot] + text` and return logits aligned with `input_ids`.

        Args:
            input_ids: `(batch, text_len)` token ids (any padding side).
            attention_mask: `(batch, text_len)` 1 for text, 0 for padding; with a cache it covers
                the text so far (as `generate` passes it), never the slot.
            target_rewards: `(batch,)` raw reward-model scores; required when the slot is not
                yet in the cache (training, first generation step).
            labels: `(batch, text_len)` next-token targets, shifted inside as in transformers;
                `-100` is ignored.
            position_ids: optional text positions (0 = first text token); shifted by one for
                the slot. Derived from the attention mask when omitted.
            cache: a KV cache from a previous call (it then holds the slot).
            logits_to_keep: as in transformers, counted over the text (the slot never has
                logits).
        """
        batch_size, text_len = input_ids.shape
        past_len = 0 if cache is None else cache.get_seq_length()
        with_slot = past_len == 0
        inputs_embeds = self.get_input_embeddings()(input_ids)
        if with_slot:
            slot = self.reward_slot(target_rewards, batch_size).to(inputs_embeds.dtype)
            inputs_embeds = torch.cat([slot, inputs_embeds], dim=1)
        elif labels is not None:
            raise ValueError("labels can only be given without a cache (the slot is not in them)")
        if attention_mask is not None:
            if attention_mask.shape != (batch_size, past_len - (not with_slot) + text_len):
                raise ValueError(
                    f"attention_mask must cover the text so far, shape ({batch_size}, "
                    f"{past_len - (not with_slot) + text_len}); got {tuple(attention_mask.shape)}"
                )
            attention_mask = torch.cat([attention_mask.new_ones(batch_size, 1), attention_mask], 1)
        if position_ids is not None:
            position_ids = position_ids + 1
            if with_slot:
                position_ids = torch.cat([position_ids.new_zeros(batch_size, 1), position_ids], 1)
        elif attention_mask is not None:
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            position_ids = positions[:, -inputs_embeds.shape[1] :]
        else:
            position_ids = torch.arange(past_len, past_len + inputs_embeds.shape[1])
            position_ids = position_ids.to(input_ids.device).expand(batch_size, -1)
        if with_slot:
            if isinstance(logits_to_keep, torch.Tensor):
                logits_to_keep = logits_to_keep + 1
            elif logits_to_keep == 0 or logits_to_keep > text_len:
                logits_to_keep = text_len
        if labels is not None and not (
            isinstance(logits_to_keep, int) and logits_to_keep == text_len
        ):
            raise ValueError("labels need logits for every text position: leave logits_to_keep=0")

        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            return_dict=True,
            **kwargs,
        )
        logits = outputs.logits
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=logits.shape[-1], **kwargs)
        hidden_states = outputs.hidden_states
        if with_slot and hidden_states is not None:
            hidden_states = tuple(states[:, 1:] for states in hidden_states)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=hidden_states,
            attentions=outputs.attentions,
        )

    def generate(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        target_rewards: torch.Tensor | None = None,
        **generation_kwargs,
    ) -> torch.LongTensor:
        """`GenerationMixin.generate` with a target reward per row (raw units).

        `target_rewards`: one per row of `input_ids`, as a tensor, list, tuple or numpy array;
        with several sequences per row (beam search, `num_return_sequences`) each of them is
        generated at its row's target. Returns prompt and new tokens, as transformers does.
        Not supported (ValueError): a static cache, or continuing from a cache returned earlier
        (the slot would be counted twice).

        Raises:
            ValueError: naming `target_rewards` and the batch size, if their shape is not
                `(batch_size,)` or they are not finite.
        """
        # A tensor, so that generate repeats it with the rows (beams, return sequences) as it
        # does every tensor argument; a list would stay one per prompt row.
        target_rewards = self.check_target_rewards(target_rewards, input_ids.shape[0])
        if (
            generation_kwargs.get("cache") is not None
            or generation_kwargs.get("past_key_values") is not None
        ):
            raise ValueError("cache: continuing generation from a returned cache is not supported")
        generation_config = generation_kwargs.get("generation_config", self.generation_config)
        implementation = generation_kwargs.get(
            "cache_implementation", generation_config.cache_implementation
        )
        if implementation not in (None, "dynamic"):
            raise ValueError(
                f"cache_implementation={implementation!r} is not supported (the slot is one extra "
                "position the cache would not count); use the default dynamic cache"
            )
        return super().generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            target_rewards=target_rewards,
            **generation_kwargs,
        )

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save weights (safetensors), config (with base config and scaler) and `scaler.json`."""
        self.config.reward_scaler = self.scaler.to_dict()
        super().save_pretrained(save_directory, **kwargs)
        self.scaler.save(os.path.join(save_directory, SCALER_FILE))


AutoConfig.register(RewardConditionedConfig.model_type, RewardConditionedConfig, exist_ok=True)
AutoModelForCausalLM.register(RewardConditionedConfig, RewardConditionedLM, exist_ok=True)

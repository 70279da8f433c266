"""Prompts, prompt/completion examples and batches for training a (reward-conditioned) causal LM.

Conventions: a completion starts with a space and is followed by EOS, which is trained. Labels
are decided by position (prompt vs completion, real vs padding), never by token id, so EOS is
trained even when the pad token is EOS. Truncation shortens only the post body of the prompt;
it never cuts the completion, the header (`SUBREDDIT:`, `TITLE:`) or the final cue (`TL;DR:`).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# torch and rewardcond.modeling are imported where they are used: the prompt helpers here serve
# jobs that load no model (trainset, targets, eval_prompts), which then start without torch.

IGNORE_INDEX = -100
TEMPLATE_FIELDS = ("subreddit", "title", "post")


def require_pad_token(tokenizer) -> int:
    """The tokenizer's pad id; ValueError naming `tokenizer` when it has none."""
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "tokenizer has no pad token: set one on purpose, e.g. "
            "`tokenizer.pad_token = tokenizer.eos_token` (padding is masked, so pad = EOS is safe)"
        )
    return tokenizer.pad_token_id


def require_eos_token(tokenizer) -> int:
    """The tokenizer's EOS id; ValueError naming `tokenizer` when it has none."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token: completions end with EOS")
    return tokenizer.eos_token_id


class PromptTemplate:
    """A prompt template with the fields `{subreddit}`, `{title}` and `{post}`.

    Example: OpenAI's TL;DR template,
    `"SUBREDDIT: r/{subreddit}\\n\\nTITLE: {title}\\n\\nPOST: {post}\\n\\nTL;DR:"`.
    """

    def __init__(self, template: str):
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if fields != set(TEMPLATE_FIELDS):
            raise ValueError(
                f"template must use exactly the fields {{subreddit}}, {{title}} and {{post}}; "
                f"got {sorted(fields)} in {template!r}"
            )
        self.template = template

    def render(self, *, subreddit: str, title: str, post: str) -> str:
        """The prompt text for one post."""
        return self.template.format(subreddit=subreddit, title=title, post=post)

    def render_truncated(
        self, tokenizer, max_tokens: int, *, subreddit: str, title: str, post: str
    ) -> str:
        """The prompt in at most `max_tokens` tokens, shortening only the post body.

        The post is cut at the last newline that lets the prompt fit; if no newline does, at
        the last whitespace; failing that, anywhere. Trailing whitespace of the kept part is
        dropped.

        Raises:
            ValueError: naming `max_tokens`, if the prompt cannot fit even with an empty post.
        """
        fields = {"subreddit": subreddit, "title": title}

        def fits(end: int) -> bool:
            prompt = self.render(**fields, post=post[:end].rstrip())
            return count_tokens(tokenizer, prompt) <= max_tokens

        if fits(len(post)):
            return self.render(**fields, post=post)
        if not fits(0):
            needed = count_tokens(tokenizer, self.render(**fields, post=""))
            raise ValueError(
                f"max_tokens={max_tokens} cannot hold the prompt even with an empty post: its "
                f"header and cue alone take {needed} tokens"
            )
        newlines = [i for i, char in enumerate(post) if char == "\n"]
        spaces = [i for i, char in enumerate(post) if char.isspace()]
        for cuts in (newlines, spaces, range(len(post))):
            end = _last_fitting(cuts, fits)
            if end:
                return self.render(**fields, post=post[:end].rstrip())
        return self.render(**fields, post="")

    def encode(
        self,
        tokenizer,
        completion: str,
        *,
        max_length: int,
        loss_on: str = "completion",
        subreddit: str,
        title: str,
        post: str,
    ) -> dict[str, list[int]]:
        """Render the prompt truncated to leave room for `completion` + EOS, then encode both.

        Raises:
            ValueError: if the completion alone leaves no room for the prompt.
        """
        room = max_length - len(completion_token_ids(tokenizer, completion))
        prompt = self.render_truncated(tokenizer, room, subreddit=subreddit, title=title, post=post)
        return encode_example(tokenizer, prompt, completion, max_length=max_length, loss_on=loss_on)


def _last_fitting(cuts: Sequence[int], fits) -> int | None:
    """The largest cut in increasing `cuts` with `fits(cut)`, by bisection (None if none > 0)."""
    low, high = 0, len(cuts)
    while low < high:
        middle = (low + high) // 2
        if fits(cuts[middle]):
            low = middle + 1
        else:
            high = middle
    best = cuts[low - 1] if low else None
    return best if best else None


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """Prompt token ids with the tokenizer's own special tokens (e.g. a BOS if it adds one)."""
    return tokenizer(prompt)["input_ids"]


def completion_token_ids(tokenizer, completion: str) -> list[int]:
    """Token ids of a completion followed by EOS."""
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return ids + [require_eos_token(tokenizer)]


def count_tokens(tokenizer, prompt: str) -> int:
    """Number of tokens of a prompt as `encode_example` and `complete` tokenize it."""
    return len(prompt_token_ids(tokenizer, prompt))


def encode_example(
    tokenizer, prompt: str, completion: str, *, max_length: int, loss_on: str = "completion"
) -> dict[str, list[int]]:
    """Tokenize one prompt/completion pair, EOS appended to the completion.

    Args:
        max_length: the longest sequence allowed (see `max_text_length`).
        loss_on: "completion" (labels only on completion + EOS) or "all" (every token).

    Returns:
        `input_ids`, `attention_mask` and `labels` (lists of ints; `-100` = not trained).

    Raises:
        ValueError: naming `loss_on` if unknown, or `max_length` if the pair is too long (the
            completion is never cut: shorten the prompt with `PromptTemplate.render_truncated`).
    """
    if loss_on not in ("completion", "all"):
        raise ValueError(f"loss_on must be 'completion' or 'all'; got {loss_on!r}")
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    completion_ids = completion_token_ids(tokenizer, completion)
    input_ids = prompt_ids + completion_ids
    if len(input_ids) > max_length:
        raise ValueError(
            f"max_length={max_length} is exceeded: prompt {len(prompt_ids)} + completion with EOS "
            f"{len(completion_ids)} tokens; truncate the prompt (PromptTemplate.render_truncated)"
        )
    prompt_labels = prompt_ids if loss_on == "all" else [IGNORE_INDEX] * len(prompt_ids)
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": prompt_labels + completion_ids,
    }


class RewardConditionedCollator:
    """Pad `encode_example` dicts into a batch for HF `Trainer` or a plain loop.

    Features may carry a float `target_reward` (all or none of them); the batch then has a
    float32 `target_rewards` tensor of shape `(batch,)`. With HF Trainer, pass
    `remove_unused_columns=False` so that the `target_reward` column reaches the collator.

    Args:
        tokenizer: provides the pad id (ValueError if it has none).
        padding_side: "right" (default) or "left"; the model gives the same result for both.
        pad_to_multiple_of: optional length multiple.
    """

    def __init__(
        self, tokenizer, padding_side: str = "right", pad_to_multiple_of: int | None = None
    ):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right'; got {padding_side!r}")
        self.pad_token_id = require_pad_token(tokenizer)
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        length = max(len(feature["input_ids"]) for feature in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            key: torch.tensor([self._pad(feature[key], length, pad) for feature in features])
            for key, pad in (
                ("input_ids", self.pad_token_id),
                ("attention_mask", 0),
                ("labels", IGNORE_INDEX),
            )
        }
        has_reward = ["target_reward" in feature for feature in features]
        if any(has_reward):
            if not all(has_reward):
                raise ValueError(
                    f"target_reward is missing from {has_reward.count(False)} of "
                    f"{len(features)} features (all or none must carry one)"
                )
            rewards = [float(feature["target_reward"]) for feature in features]
            batch["target_rewards"] = torch.tensor(rewards, dtype=torch.float32)
        return batch

    def _pad(self, values: Sequence[int], length: int, pad: int) -> list[int]:
        padding = [pad] * (length - len(values))
        return padding + list(values) if self.padding_side == "left" else list(values) + padding


def max_text_length(model_or_config) -> int:
    """Longest text a model takes: the base's context (minus the slot if reward-conditioned)."""
    from rewardcond.modeling import RewardConditionedConfig

    config = getattr(model_or_config, "config", model_or_config)
    if isinstance(config, RewardConditionedConfig):
        return config.text_config.max_position_embeddings - 1
    return config.max_position_embeddings

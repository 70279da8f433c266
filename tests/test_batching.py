import copy

import pytest
import torch
from real_layout import LONG_POST
from transformers import GPT2Config, LlamaConfig

from rewardcond.batching import (
    PromptTemplate,
    RewardConditionedCollator,
    count_tokens,
    encode_example,
    max_text_length,
)
from rewardcond.modeling import RewardConditionedConfig

TEMPLATE = PromptTemplate("SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:")
POST = {
    "subreddit": "relationships",
    "title": "My roommate never cleans",
    "post": "We share a flat.\nShe leaves dishes everywhere and never cleans.\nI asked twice.",
}


def test_render_fills_the_template():
    assert TEMPLATE.render(**POST) == (
        "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans\n\nPOST: We share a flat."
        "\nShe leaves dishes everywhere and never cleans.\nI asked twice.\n\nTL;DR:"
    )


def test_template_must_have_the_three_fields():
    with pytest.raises(ValueError, match="template must use exactly"):
        PromptTemplate("TITLE: {title}\n\nTL;DR:")


def test_render_truncated_keeps_a_prompt_that_fits(tiny_tokenizer):
    full = TEMPLATE.render(**POST)
    assert TEMPLATE.render_truncated(
        tiny_tokenizer, count_tokens(tiny_tokenizer, full), **POST
    ) == (full)


def test_render_truncated_cuts_the_post_at_a_newline_and_keeps_header_and_cue(tiny_tokenizer):
    full_length = count_tokens(tiny_tokenizer, TEMPLATE.render(**POST))
    prompt = TEMPLATE.render_truncated(tiny_tokenizer, full_length - 3, **POST)
    expected_post = "We share a flat.\nShe leaves dishes everywhere and never cleans."
    assert prompt == TEMPLATE.render(**{**POST, "post": expected_post})
    assert count_tokens(tiny_tokenizer, prompt) <= full_length - 3


def test_render_truncated_falls_back_to_a_word_boundary(tiny_tokenizer):
    post = {**POST, "post": "She leaves dishes everywhere and never cleans the kitchen"}
    limit = count_tokens(tiny_tokenizer, TEMPLATE.render(**post)) - 4
    prompt = TEMPLATE.render_truncated(tiny_tokenizer, limit, **post)
    assert count_tokens(tiny_tokenizer, prompt) <= limit
    kept = prompt.split("POST: ")[1].split("\n\nTL;DR:")[0]
    assert prompt.startswith("SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans")
    assert prompt.endswith("\n\nTL;DR:")
    assert post["post"].startswith(kept) and post["post"][len(kept)] == " "


@pytest.mark.parametrize("max_tokens", [64, 400])
def test_render_truncated_fits_a_post_longer_than_any_context(tiny_tokenizer, max_tokens):
    """A 42,000-character post (33,000 tokens of the tiny tokenizer): the header and the cue are
    kept and the post is cut at a line end once one fits (400), else at a space (64)."""
    post = {"subreddit": "Breadit", "title": "My starter", "post": LONG_POST}
    prompt = TEMPLATE.render_truncated(tiny_tokenizer, max_tokens, **post)
    assert count_tokens(tiny_tokenizer, prompt) <= max_tokens
    assert prompt.startswith("SUBREDDIT: r/Breadit\n\nTITLE: My starter\n\nPOST: Day 1: I fed")
    kept = prompt.split("POST: ")[1].removesuffix("\n\nTL;DR:")
    assert prompt.endswith("\n\nTL;DR:") and LONG_POST.startswith(kept)
    cut = "\n" if max_tokens == 400 else " "
    assert LONG_POST[len(kept)] == cut
    # the longest such cut: one more line (word) does not fit
    longer = LONG_POST[: LONG_POST.index(cut, len(kept) + 1)]
    assert count_tokens(tiny_tokenizer, TEMPLATE.render(**{**post, "post": longer})) > max_tokens


def test_render_truncated_fails_when_header_and_cue_cannot_fit(tiny_tokenizer):
    empty_length = count_tokens(tiny_tokenizer, TEMPLATE.render(**{**POST, "post": ""}))
    with pytest.raises(ValueError, match=f"max_tokens={empty_length - 1} cannot hold"):
        TEMPLATE.render_truncated(tiny_tokenizer, empty_length - 1, **POST)


def test_encode_example_trains_completion_and_eos_only(tiny_tokenizer):
    prompt, completion = "TITLE: hi\n\nTL;DR:", " a messy roommate"
    example = encode_example(tiny_tokenizer, prompt, completion, max_length=64)
    prompt_ids = tiny_tokenizer(prompt)["input_ids"]
    completion_ids = tiny_tokenizer(completion)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert example["input_ids"] == prompt_ids + completion_ids
    assert example["attention_mask"] == [1] * len(example["input_ids"])
    assert example["labels"] == [-100] * len(prompt_ids) + completion_ids
    everything = encode_example(tiny_tokenizer, prompt, completion, max_length=64, loss_on="all")
    assert everything["labels"] == prompt_ids + completion_ids


def test_encode_example_never_cuts_the_completion(tiny_tokenizer):
    example = encode_example(tiny_tokenizer, "TL;DR:", " debt", max_length=64)
    with pytest.raises(ValueError, match="max_length=3 is exceeded"):
        encode_example(tiny_tokenizer, "TL;DR:", " debt", max_length=3)
    with pytest.raises(ValueError, match="loss_on must be"):
        encode_example(tiny_tokenizer, "TL;DR:", " debt", max_length=64, loss_on="prompt")
    assert len(example["input_ids"]) <= 64


def test_template_encode_truncates_the_prompt_to_leave_room_for_the_completion(tiny_tokenizer):
    completion = " she never cleans"
    full = encode_example(tiny_tokenizer, TEMPLATE.render(**POST), completion, max_length=1000)
    example = TEMPLATE.encode(
        tiny_tokenizer, completion, max_length=len(full["input_ids"]) - 3, **POST
    )
    assert len(example["input_ids"]) <= len(full["input_ids"]) - 3
    trained = [label for label in example["labels"] if label != -100]
    assert trained == [label for label in full["labels"] if label != -100]


@pytest.mark.parametrize("side", ["left", "right"])
def test_collator_pads_with_mask_and_ignored_labels(tiny_tokenizer, side):
    features = [
        # Other columns (kept by Trainer's remove_unused_columns=False) are not batched.
        {**encode_example(tiny_tokenizer, "TL;DR:", " a messy roommate", max_length=64), "id": "a"},
        encode_example(tiny_tokenizer, "TL;DR:", " debt", max_length=64),
    ]
    features[0]["target_reward"], features[1]["target_reward"] = 1.5, -0.5
    batch = RewardConditionedCollator(tiny_tokenizer, padding_side=side)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "target_rewards"}
    assert batch["target_rewards"].tolist() == [1.5, -0.5]
    assert batch["target_rewards"].dtype == torch.float32
    short = len(features[1]["input_ids"])
    n_pad = batch["input_ids"].shape[1] - short
    real = slice(n_pad, None) if side == "left" else slice(0, short)
    padding = slice(0, n_pad) if side == "left" else slice(short, None)
    assert batch["input_ids"][1, real].tolist() == features[1]["input_ids"]
    assert batch["labels"][1, real].tolist() == features[1]["labels"]
    assert batch["attention_mask"][1, padding].tolist() == [0] * n_pad
    assert batch["labels"][1, padding].tolist() == [-100] * n_pad
    # pad = eos here, yet the real EOS is trained and the padding is not.
    assert batch["labels"][1, real][-1] == tiny_tokenizer.eos_token_id


def test_collator_rejects_partial_rewards_and_missing_pad_token(tiny_tokenizer):
    features = [
        {**encode_example(tiny_tokenizer, "TL;DR:", " a", max_length=64), "target_reward": 1.0},
        encode_example(tiny_tokenizer, "TL;DR:", " b", max_length=64),
    ]
    with pytest.raises(ValueError, match="target_reward is missing from 1 of 2"):
        RewardConditionedCollator(tiny_tokenizer)(features)
    assert "target_rewards" not in RewardConditionedCollator(tiny_tokenizer)(features[1:])
    no_pad = copy.deepcopy(tiny_tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="tokenizer has no pad token"):
        RewardConditionedCollator(no_pad)


def test_max_text_length_leaves_room_for_the_slot():
    gpt2 = GPT2Config(n_positions=1024)
    llama = LlamaConfig(max_position_embeddings=2048)
    assert max_text_length(RewardConditionedConfig(text_config=gpt2)) == 1023
    assert max_text_length(RewardConditionedConfig(text_config=llama)) == 2047
    assert max_text_length(gpt2) == 1024

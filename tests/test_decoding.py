import copy

import pytest
import torch

from rewardcond.decoding import Completion, complete
from rewardcond.modeling import RewardConditionedLM

PROMPTS = [
    "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans\n\nTL;DR:",
    "TL;DR:",
    "TITLE: Paying off debt\n\nTL;DR:",
    "the quick brown fox",
    "SUBREDDIT: r/personalfinance\n\nTL;DR:",
]
TARGETS = [0.0, 1.0, -2.0, 5.0, 0.5]


def generate_alone(model, tokenizer, prompt, target, max_new_tokens):
    input_ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    extra = {"target_rewards": torch.tensor([target])} if target is not None else {}
    output = model.generate(
        input_ids,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    return output[0, input_ids.shape[1] :].tolist()


@pytest.mark.smollm2
def test_complete_matches_generating_each_prompt_alone(conditioned):
    model, tokenizer = conditioned
    completions = complete(model, tokenizer, PROMPTS, TARGETS, max_new_tokens=6, batch_size=2)
    assert len(completions) == len(PROMPTS)
    for prompt, target, completion in zip(PROMPTS, TARGETS, completions, strict=True):
        expected = generate_alone(model, tokenizer, prompt, target, 6)
        assert completion.token_ids == expected
        assert completion.text == tokenizer.decode(expected)
        assert completion.finished is False


def test_complete_stops_at_eos_and_reports_finished(conditioned):
    model, tokenizer = conditioned
    first = complete(model, tokenizer, PROMPTS[:1], TARGETS[:1], max_new_tokens=6)[0]
    # Declare the third generated token to be EOS: generation must stop there and drop it.
    stopping = copy.deepcopy(tokenizer)
    stopping.eos_token = tokenizer.convert_ids_to_tokens(first.token_ids[2])
    (stopped,) = complete(model, stopping, PROMPTS[:1], TARGETS[:1], max_new_tokens=6)
    assert stopped == Completion(
        text=tokenizer.decode(first.token_ids[:2]), token_ids=first.token_ids[:2], finished=True
    )


@pytest.mark.smollm2
def test_complete_with_a_plain_causal_lm(base_and_tokenizer):
    base, tokenizer = base_and_tokenizer
    completions = complete(base, tokenizer, PROMPTS[:3], max_new_tokens=4, batch_size=2)
    for prompt, completion in zip(PROMPTS[:3], completions, strict=True):
        assert completion.token_ids == generate_alone(base, tokenizer, prompt, None, 4)


def test_sampling_is_seeded(conditioned):
    model, tokenizer = conditioned
    prompts = PROMPTS[:1] * 4

    def sample(targets, seed):
        kwargs = {"do_sample": True, "temperature": 1.5, "max_new_tokens": 8, "seed": seed}
        return [c.token_ids for c in complete(model, tokenizer, prompts, targets, **kwargs)]

    assert sample([0.0] * 4, seed=1) == sample([0.0] * 4, seed=1)
    assert sample([0.0] * 4, seed=1) != sample([0.0] * 4, seed=2)


def test_complete_rejects_bad_input(conditioned, base_and_tokenizer):
    model, tokenizer = conditioned
    base, _ = base_and_tokenizer
    assert isinstance(model, RewardConditionedLM)
    with pytest.raises(ValueError, match="target_rewards is required"):
        complete(model, tokenizer, PROMPTS)
    with pytest.raises(ValueError, match=r"target_rewards must have shape \(5,\)"):
        complete(model, tokenizer, PROMPTS, TARGETS[:2])
    with pytest.raises(ValueError, match="target_rewards must be finite"):
        complete(model, tokenizer, PROMPTS, [float("nan")] * 5)
    with pytest.raises(ValueError, match="target_rewards must be None for a plain causal LM"):
        complete(base, tokenizer, PROMPTS, TARGETS)
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="tokenizer has no pad token"):
        complete(model, no_pad, PROMPTS, TARGETS)

"""DPO through TRL's DPOTrainer on a tiny GPT-2: the API facts we rely on, and that it learns."""

import math

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from rewardcond.methods.dpo import preference_pairs, train_dpo

PROMPTS = [
    "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans\n\nPOST: dishes\n\nTL;DR:",
    "SUBREDDIT: r/personalfinance\n\nTITLE: Paying off debt\n\nPOST: I owe 5000.\n\nTL;DR:",
]
CHOSEN = [" roommate is messy, what do I do?", " how do I pay my debt and rent?"]
REJECTED = [" the quick brown fox", " lazy dog 0123"]


@pytest.fixture
def sft_folder(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tiny_tokenizer),
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=tiny_tokenizer.eos_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    path = tmp_path / "sft"
    GPT2LMHeadModel(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def pairs_frame():
    return pd.DataFrame(
        {
            "post_id": ["a", "b"] * 2,
            "prompt": PROMPTS * 2,
            "chosen": CHOSEN * 2,
            "rejected": REJECTED * 2,
        }
    )


def completion_logprob(model, tokenizer, prompt, completion):
    """log p(completion + EOS | prompt), summed over the completion's tokens."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + completion)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    return logp[len(prompt_ids) - 1 :].sum().item()


def dpo_loss_and_margin(policy, ref, tokenizer, beta):
    losses, margins = [], []
    for prompt, chosen, rejected in zip(PROMPTS, CHOSEN, REJECTED, strict=True):
        margin = beta * (
            completion_logprob(policy, tokenizer, prompt, chosen)
            - completion_logprob(ref, tokenizer, prompt, chosen)
            - completion_logprob(policy, tokenizer, prompt, rejected)
            + completion_logprob(ref, tokenizer, prompt, rejected)
        )
        margins.append(margin)
        losses.append(-math.log(1 / (1 + math.exp(-margin))))
    return sum(losses) / len(losses), sum(margins) / len(margins)


def test_preference_pairs_orders_winner_first():
    comparisons = pd.DataFrame(
        {
            "post_id": ["a", "b"],
            "summary_0": [" x", " y"],
            "summary_1": [" p", " q"],
            "choice": [1, 0],
        }
    )
    pairs = preference_pairs(comparisons, pd.Series({"a": "A:", "b": "B:"}))
    assert pairs.to_dict("list") == {
        "post_id": ["a", "b"],
        "prompt": ["A:", "B:"],
        "chosen": [" p", " y"],
        "rejected": [" x", " q"],
    }


def test_preference_pairs_refuses_unknown_post_and_bad_choice():
    comparisons = pd.DataFrame(
        {"post_id": ["a"], "summary_0": [" x"], "summary_1": [" p"], "choice": [2]}
    )
    with pytest.raises(KeyError, match="1 compared posts have no prompt"):
        preference_pairs(comparisons, pd.Series({"b": "B:"}))
    with pytest.raises(ValueError, match="'choice' must be 0 or 1; row 0 has 2"):
        preference_pairs(comparisons, pd.Series({"a": "A:"}))


def test_dpo_steps_raise_margin_and_save_loadable_model(sft_folder, tiny_tokenizer, tmp_path):
    policy = AutoModelForCausalLM.from_pretrained(sft_folder)
    ref = AutoModelForCausalLM.from_pretrained(sft_folder)
    loss_before, margin_before = dpo_loss_and_margin(policy, ref, tiny_tokenizer, beta=0.1)
    assert margin_before == 0.0 and loss_before == pytest.approx(math.log(2))

    trainer = train_dpo(
        policy,
        ref,
        tiny_tokenizer,
        pairs_frame(),
        checkpoint_dir=tmp_path / "checkpoints",
        beta=0.1,
        learning_rate=1e-2,
        epochs=2,
        batch_size=2,
        max_length=64,
        save_steps=100,
        seed=0,
    )
    assert trainer.state.global_step == 4
    # TRL's own record: step 1 is at the reference, so loss log(2) and margin 0.
    first, last = trainer.state.log_history[0], trainer.state.log_history[3]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5) and first["rewards/margins"] == 0
    assert last["loss"] < first["loss"] and last["rewards/margins"] > 0

    out = tmp_path / "dpo"
    trainer.save_model(str(out))
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    ref_again = AutoModelForCausalLM.from_pretrained(sft_folder)
    loss_after, margin_after = dpo_loss_and_margin(reloaded, ref_again, tiny_tokenizer, beta=0.1)
    assert margin_after > 0.05 and loss_after < loss_before - 0.02


def test_trl_appends_eos_and_keeps_prompt_tokens(sft_folder, tiny_tokenizer, tmp_path):
    """TRL adds EOS to chosen/rejected text itself, and the prompt tokens are the prompt's own."""
    trainer = train_dpo(
        AutoModelForCausalLM.from_pretrained(sft_folder),
        AutoModelForCausalLM.from_pretrained(sft_folder),
        tiny_tokenizer,
        pairs_frame().iloc[:2],
        checkpoint_dir=tmp_path / "checkpoints",
        beta=0.1,
        learning_rate=1e-3,
        epochs=1,
        batch_size=2,
        max_length=64,
        seed=0,
    )
    row = trainer.train_dataset[0]
    eos = tiny_tokenizer.eos_token_id
    assert row["prompt_ids"] == tiny_tokenizer(PROMPTS[0])["input_ids"]
    assert row["chosen_ids"] == tiny_tokenizer(CHOSEN[0])["input_ids"] + [eos]
    assert row["rejected_ids"] == tiny_tokenizer(REJECTED[0])["input_ids"] + [eos]


def test_prompt_filling_max_length_is_refused_not_dropped(sft_folder, tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="2 prompts fill max_length=8 tokens"):
        train_dpo(
            AutoModelForCausalLM.from_pretrained(sft_folder),
            AutoModelForCausalLM.from_pretrained(sft_folder),
            tiny_tokenizer,
            pairs_frame().iloc[:2],
            checkpoint_dir=tmp_path / "checkpoints",
            beta=0.1,
            learning_rate=1e-3,
            epochs=1,
            batch_size=2,
            max_length=8,
            seed=0,
        )

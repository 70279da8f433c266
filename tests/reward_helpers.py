"""Tiny reward models and toy tables shared by the reward-model and scoring tests."""

import pandas as pd
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rewardcond.reward_models.model import RewardModel

TEMPLATE = "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
GOOD, BAD = " the quick brown fox", " the lazy dog"


def tiny_base(tokenizer, *, n_positions: int = 128, seed: int = 0) -> GPT2LMHeadModel:
    """A 2-layer, 16-wide GPT-2 causal LM over the tiny tokenizer's vocabulary."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=n_positions,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config).eval()


def tiny_reward_model(tokenizer, **kwargs) -> RewardModel:
    """A `RewardModel` wrapped around `tiny_base`."""
    return RewardModel.from_base(tiny_base(tokenizer, **kwargs)).eval()


def toy_posts(n: int = 12) -> pd.DataFrame:
    """Posts of varied length; even-numbered ones are train posts with a reference."""
    return pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n)],
            "subreddit": [("relationships", "personalfinance")[i % 2] for i in range(n)],
            "title": [f"My roommate {i}" for i in range(n)],
            "post": ["We share a flat. " * (1 + i % 4) + "I asked twice." for i in range(n)],
            "reference": [" roommate is messy" if i % 2 == 0 else None for i in range(n)],
            "split": ["train" if i % 2 == 0 else "valid" for i in range(n)],
        }
    )


def toy_comparisons(posts: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """One comparison per post: GOOD against BAD, the labeller's pick alternating sides."""
    n = len(posts)
    choice = [i % 2 for i in range(n)]
    return pd.DataFrame(
        {
            "post_id": posts["post_id"],
            "summary_0": [BAD if c else GOOD for c in choice],
            "summary_1": [GOOD if c else BAD for c in choice],
            "policy_0": "a",
            "policy_1": "b",
            "choice": choice,
            "split": split,
            "worker": "w",
            "batch": "batch1",
            "confidence": float("nan"),
        }
    )

"""A tiny scored world for the experiment tests: posts, scored completions and a base model folder.

Train posts p00..p11 each have a reference (reward 1.0 + 0.1 i) and three comparison summaries
(rewards 0.0, 0.5, 2.0 + 0.1 i). On top, with known counts, rows the filters must drop:
one duplicate (same post and text, extra spaces) per post, one empty completion, one completion
longer than MAX_COMPLETION_TOKENS, one completion of a post whose title alone exceeds
MAX_PROMPT_TOKENS, and rows of other splits that are never read.
"""

from __future__ import annotations

import pandas as pd
from transformers import GPT2Config, GPT2LMHeadModel

from rewardcond.methods import get_method
from rewardcond.train import TrainSettings
from rewardcond.trainset import TrainsetSettings, build_trainset

TEMPLATE = "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
N_TRAIN_POSTS = 12
MAX_COMPLETION_TOKENS = 24
MAX_PROMPT_TOKENS = 100
SUMMARIES = [" roommate is messy", " how do I pay my debt", " the quick brown fox"]


def make_posts() -> pd.DataFrame:
    rows = []
    for i in range(N_TRAIN_POSTS):
        rows.append(_post(f"p{i:02d}", "train", "train", " I asked twice."))
    rows.append({**_post("plong", "train", None, " long"), "title": "a very long title " * 60})
    for i in range(6):
        rows.append(_post(f"v{i:02d}", "valid", "valid2", " she leaves dishes."))
    rows.append({**_post("vnoref", None, "valid2", None)})
    for i in range(5):
        rows.append(_post(f"t{i:02d}", "test", None, " my rent is due."))
    return pd.DataFrame(rows)


def _post(post_id, split, comparison_split, reference):
    return {
        "post_id": post_id,
        "subreddit": "relationships",
        "title": f"My roommate never cleans {post_id}",
        "post": "We share a flat.\nShe leaves dishes everywhere.\nI asked twice.",
        "reference": reference,
        "split": split,
        "comparison_split": comparison_split,
    }


def make_scored() -> pd.DataFrame:
    rows = []
    for i in range(N_TRAIN_POSTS):
        post_id = f"p{i:02d}"
        rows.append(_row(post_id, " I asked twice.", "reference", "train", 1.0 + 0.1 * i))
        for text, reward in zip(SUMMARIES, (0.0, 0.5, 2.0 + 0.1 * i), strict=True):
            rows.append(_row(post_id, text, "comparison", "train", reward))
        rows.append(_row(post_id, SUMMARIES[0] + "  ", "comparison", "train", 0.0))  # duplicate
    rows.append(_row("p00", "", "comparison", "train", 5.0))  # too short
    rows.append(_row("p01", " the quick brown fox" * 10, "comparison", "train", 5.0))  # too long
    rows.append(_row("plong", " long", "comparison", "train", 5.0))  # prompt cannot fit
    rows.append(_row("v00", " she leaves dishes", "comparison", "valid2", 9.0))  # other split
    rows.append(_row("t00", " my rent is due", "reference", "test", 9.0))  # other split
    frame = pd.DataFrame(rows)
    frame["completion_id"] = [f"{i:016x}" for i in range(len(frame))]
    return frame


def _row(post_id, text, source, split, reward):
    return {
        "post_id": post_id,
        "text": text,
        "policy": "reference" if source == "reference" else "sup1",
        "source": source,
        "split": split,
        "reward": reward,
        "reward_model": "trained:0123456789abcdef",
        "truncated": False,
    }


def write_world(root, tokenizer) -> dict[str, str]:
    """Write posts, scored completions and a tiny GPT-2 base folder under `root`; their paths."""
    paths = {
        "posts": str(root / "posts.parquet"),
        "scored": str(root / "completions.parquet"),
        "base": str(root / "base"),
    }
    make_posts().to_parquet(paths["posts"], index=False)
    make_scored().to_parquet(paths["scored"], index=False)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(paths["base"])
    tokenizer.save_pretrained(paths["base"])
    return paths


def tiny_train_settings(**sizes) -> TrainSettings:
    """Training settings of the method tests: a constant learning rate of 1e-2, no warm-up, a loss
    logged every step, no checkpoint; `sizes` sets the batch and the steps (and overrides)."""
    settings = {
        "learning_rate": 1e-2,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "save_steps": 100,
        "logging_steps": 1,
    }
    return TrainSettings(**{**settings, **sizes})


def write_trainsets(root, paths: dict[str, str], methods, **sources) -> dict[str, str]:
    """Build each method's trainset from the world in `paths` (seed 0, the world's token limits);
    add `paths[method]` and `paths[f"{method}_report"]`; `sources` passes more inputs to
    `build_trainset` (e.g. `comparisons_path`). Returns `paths`."""
    settings = TrainsetSettings(
        max_completion_tokens=MAX_COMPLETION_TOKENS, max_prompt_tokens=MAX_PROMPT_TOKENS
    )
    for method in methods:
        paths[method] = str(root / f"{method}.parquet")
        paths[f"{method}_report"] = str(root / f"{method}.json")
        build_trainset(
            get_method(method),
            scored_path=paths["scored"],
            posts_path=paths["posts"],
            base_path=paths["base"],
            template=TEMPLATE,
            settings=settings,
            seed=0,
            output_path=paths[method],
            report_path=paths[f"{method}_report"],
            **sources,
        )
    return paths

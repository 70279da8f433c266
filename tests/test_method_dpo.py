"""`dpo`: pairs from the train comparisons, and TRL 1.16's DPOTrainer behind `train_method`."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from experiment_world import (
    MAX_COMPLETION_TOKENS,
    MAX_PROMPT_TOKENS,
    N_TRAIN_POSTS,
    SUMMARIES,
    TEMPLATE,
    tiny_train_settings,
    write_world,
)
from transformers import AutoModelForCausalLM

from rewardcond.methods import get_method
from rewardcond.methods.dpo import preference_pairs
from rewardcond.train import train_method
from rewardcond.trainset import TrainsetSettings, build_trainset

GOOD, BAD = SUMMARIES[0], SUMMARIES[2]
SETTINGS = tiny_train_settings(global_batch_size=4, per_device_batch_size=4, max_steps=6)


def make_comparisons() -> pd.DataFrame:
    """GOOD beats BAD on every train post, written in either order; plus rows to skip."""
    rows = []
    for i in range(N_TRAIN_POSTS):
        first, second = (GOOD, BAD) if i % 2 else (BAD, GOOD)
        rows.append(_comparison(f"p{i:02d}", first, second, int(first == BAD), "train"))
    rows.append(_comparison("p01", GOOD, " the quick brown fox" * 10, 0, "train"))  # too long
    rows.append(_comparison("v00", GOOD, BAD, 0, "valid2"))  # not train
    return pd.DataFrame(rows)


def _comparison(post_id, summary_0, summary_1, choice, split):
    return {
        "post_id": post_id,
        "summary_0": summary_0,
        "summary_1": summary_1,
        "policy_0": "sup1",
        "policy_1": "sup2",
        "choice": choice,
        "split": split,
        "worker": "w",
        "batch": "b",
        "confidence": float("nan"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("dpo")
    paths = write_world(root, tiny_tokenizer)
    paths["comparisons"] = str(root / "comparisons.parquet")
    make_comparisons().to_parquet(paths["comparisons"], index=False)
    paths["dpo"] = str(root / "dpo.parquet")
    paths["report"] = str(root / "dpo.json")
    build_trainset(
        get_method("dpo"),
        scored_path=paths["scored"],
        posts_path=paths["posts"],
        comparisons_path=paths["comparisons"],
        base_path=paths["base"],
        template=TEMPLATE,
        settings=TrainsetSettings(
            max_completion_tokens=MAX_COMPLETION_TOKENS, max_prompt_tokens=MAX_PROMPT_TOKENS
        ),
        seed=0,
        output_path=paths["dpo"],
        report_path=paths["report"],
    )
    return paths


def test_pairs_put_the_preferred_summary_first_and_count_skips(world):
    pairs = pd.read_parquet(world["dpo"])
    assert list(pairs.columns) == ["post_id", "prompt", "chosen", "rejected"]
    assert list(pairs["post_id"]) == [f"p{i:02d}" for i in range(N_TRAIN_POSTS)]
    assert set(pairs["chosen"]) == {GOOD} and set(pairs["rejected"]) == {BAD}
    assert pairs["prompt"].str.startswith("SUBREDDIT: r/relationships\n\nTITLE: ").all()
    assert pairs["prompt"].str.endswith("\n\nTL;DR:").all()
    report = json.loads(Path(world["report"]).read_text())
    assert report["pairs"] == {
        "train_comparisons": 13,
        "summary_filtered_out": 1,
        "pairs": 12,
        "excluded_domains": {},
    }
    assert report["rows"] == 12


def test_bad_choice_is_refused():
    rows = pd.DataFrame({"post_id": ["a"], "completion": [" x"], "prompt": ["A:"]})
    comparisons = pd.DataFrame(
        {
            "post_id": ["a"],
            "summary_0": [" x"],
            "summary_1": [" x"],
            "choice": [2],
            "split": ["train"],
        }
    )
    with pytest.raises(ValueError, match="comparisons row 0: field 'choice' is 2; expected 0 or 1"):
        preference_pairs(rows, comparisons)


def test_options_are_checked():
    with pytest.raises(ValueError, match="method_options.dpo.beta must be > 0"):
        get_method("dpo", {"beta": 0.0})
    with pytest.raises(ValueError, match="method_options.dpo.loss_type must be one of"):
        get_method("dpo", {"loss_type": "ppo"})


def completion_logprob(model, tokenizer, prompt, completion):
    """log p(completion + EOS | prompt), summed over the completion's tokens."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + completion)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    return logp[len(prompt_ids) - 1 :].sum().item()


def mean_margin(policy, ref, tokenizer, pairs, beta):
    """Mean DPO implicit-reward margin beta * (log-ratio chosen - log-ratio rejected)."""
    margins = [
        beta
        * (
            completion_logprob(policy, tokenizer, pair.prompt, pair.chosen)
            - completion_logprob(ref, tokenizer, pair.prompt, pair.chosen)
            - completion_logprob(policy, tokenizer, pair.prompt, pair.rejected)
            + completion_logprob(ref, tokenizer, pair.prompt, pair.rejected)
        )
        for pair in pairs.itertuples(index=False)
    ]
    return sum(margins) / len(margins)


def test_dpo_steps_lower_the_loss_and_save_a_loadable_model(world, tmp_path, tiny_tokenizer):
    beta = 0.5
    trainer = train_method(
        get_method("dpo", {"beta": beta, "max_length": 128}),
        trainset_path=world["dpo"],
        base_path=world["base"],  # stands in for the sft model folder
        output_dir=str(tmp_path / "dpo"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        settings=SETTINGS,
        seed=0,
        device="cpu",
    )
    assert type(trainer).__name__ == "DPOTrainer" and trainer.state.global_step == 6
    assert trainer.args.beta == beta and trainer.args.activation_checkpointing is False
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    # The first step is taken at the reference weights: loss log 2, margin 0.
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert history[0]["rewards/margins"] == 0.0
    assert history[-1]["loss"] < 0.5 and history[-1]["rewards/margins"] > 0.5

    # TRL appends EOS to both completions; the prompt tokens are the prompt's own.
    row, pair = trainer.train_dataset[0], pd.read_parquet(world["dpo"]).iloc[0]
    eos = tiny_tokenizer.eos_token_id
    assert row["prompt_ids"] == tiny_tokenizer(pair["prompt"])["input_ids"]
    assert row["chosen_ids"] == tiny_tokenizer(pair["chosen"])["input_ids"] + [eos]
    assert row["rejected_ids"] == tiny_tokenizer(pair["rejected"])["input_ids"] + [eos]

    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "dpo")
    ref = AutoModelForCausalLM.from_pretrained(world["base"])
    pairs = pd.read_parquet(world["dpo"])
    assert mean_margin(ref, ref, tiny_tokenizer, pairs, beta) == 0.0
    assert mean_margin(policy, ref, tiny_tokenizer, pairs, beta) > 0.5
    curve = pd.read_csv(tmp_path / "dpo" / "loss.csv")
    assert len(curve) == 6 and curve["loss"].iloc[-1] < curve["loss"].iloc[0]
    manifest = json.loads((tmp_path / "dpo" / "manifest.json").read_text())
    assert manifest["params"]["method_options"] == {
        "beta": beta,
        "loss_type": "sigmoid",
        "max_length": 128,
    }


def test_a_prompt_that_fills_max_length_is_refused_not_dropped(world, tmp_path):
    # The trainset was built for max_length None; TRL would drop every pair.
    with pytest.raises(ValueError, match=r"DPOTrainer kept 0 of 12 pairs .*dpo.max_length=8\)"):
        train_method(
            get_method("dpo", {"max_length": 8}),
            trainset_path=world["dpo"],
            base_path=world["base"],
            output_dir=str(tmp_path / "dpo"),
            checkpoint_dir=str(tmp_path / "checkpoints"),
            settings=SETTINGS,
            seed=0,
            device="cpu",
        )
    assert not (tmp_path / "dpo").exists()


# The prompt of train post p00 is 82 tokens (p01..p11: 83) and its completions 6 (GOOD) and 16
# (BAD) tokens + EOS: the prompt alone fits 86 tokens, but prompt + BAD + EOS (99) does not. The
# header and cue alone (the post body cut away) take 40 tokens (p01..p11: 41).
PROMPT_TOKENS, HEADER_TOKENS, GOOD_TOKENS, BAD_TOKENS = 82, 40, 6, 16


def dpo_trainset(world, tmp_path, max_length):
    """The dpo training pairs (and report) built for `max_length`."""
    output, report = tmp_path / "dpo.parquet", tmp_path / "dpo.json"
    build_trainset(
        get_method("dpo", {"max_length": max_length}),
        scored_path=world["scored"],
        posts_path=world["posts"],
        comparisons_path=world["comparisons"],
        base_path=world["base"],
        template=TEMPLATE,
        settings=TrainsetSettings(
            max_completion_tokens=MAX_COMPLETION_TOKENS, max_prompt_tokens=MAX_PROMPT_TOKENS
        ),
        seed=0,
        output_path=str(output),
        report_path=str(report),
    )
    return pd.read_parquet(output), json.loads(report.read_text())


def test_token_counts_of_the_long_prompt_case(world, tiny_tokenizer):
    pairs = pd.read_parquet(world["dpo"])  # built with max_length None: prompts as rendered
    lengths = [len(ids) for ids in tiny_tokenizer(list(pairs["prompt"]))["input_ids"]]
    assert lengths == [PROMPT_TOKENS] + [PROMPT_TOKENS + 1] * 11
    assert len(tiny_tokenizer(GOOD)["input_ids"]) == GOOD_TOKENS
    assert len(tiny_tokenizer(BAD)["input_ids"]) == BAD_TOKENS
    for post, tokens in (("p00", HEADER_TOKENS), ("p01", HEADER_TOKENS + 1)):
        header = TEMPLATE.format(
            subreddit="relationships", title=f"My roommate never cleans {post}", post=""
        )
        assert len(tiny_tokenizer(header)["input_ids"]) == tokens


def test_a_long_prompt_is_shortened_never_the_completion(world, tmp_path, tiny_tokenizer):
    max_length = 86
    pairs, report = dpo_trainset(world, tmp_path, max_length)
    assert report["pairs"] == {
        "train_comparisons": 13,
        "summary_filtered_out": 1,
        "pairs": 12,
        "prompt_shortened": 12,
        "excluded_domains": {},
    }
    # The post body is cut at its last newline that lets prompt + BAD + EOS fit: 69 tokens.
    assert pairs["prompt"].iloc[0] == (
        "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans p00\n\n"
        "POST: We share a flat.\nShe leaves dishes everywhere.\n\nTL;DR:"
    )
    assert len(tiny_tokenizer(pairs["prompt"].iloc[0])["input_ids"]) + BAD_TOKENS + 1 <= max_length

    # What TRL's DPOTrainer really trains on: its tokenized rows through its own collator.
    method = get_method("dpo", {"max_length": max_length})
    model, tokenizer = method.build_model(world["base"], pairs)
    args = {"output_dir": str(tmp_path / "out"), "report_to": "none", "use_cpu": True}
    trainer = method.pair_trainer(
        model, tokenizer, pairs, base_path=world["base"], args=args, callbacks=()
    )
    assert len(trainer.train_dataset) == 12
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(12)])
    eos = tiny_tokenizer.eos_token_id
    for row in range(24):
        pair = pairs.iloc[row % 12]
        summary = pair["chosen"] if row < 12 else pair["rejected"]
        ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        trained = batch["input_ids"][row][batch["completion_mask"][row].bool()].tolist()
        assert trained == tiny_tokenizer(summary)["input_ids"] + [eos]
        assert ids == tiny_tokenizer(pair["prompt"])["input_ids"] + trained
        assert len(ids) <= max_length


def test_a_max_length_that_cannot_hold_completion_eos_and_header_is_refused(world, tmp_path):
    needed = BAD_TOKENS + 1 + HEADER_TOKENS + 1  # p01's header is one token longer than p00's
    with pytest.raises(
        ValueError,
        match=(
            rf"method_options.dpo.max_length={needed - 1} cannot hold 11 of 12 pairs without "
            rf"cutting a completion: e.g. pair 1 \(post 'p01'\) needs its longer completion \+ "
            rf"EOS \({BAD_TOKENS + 1} tokens\) \+ its shortest prompt, the post body cut away "
            rf"\({HEADER_TOKENS + 1} tokens\) = {needed}; raise max_length to at least {needed}"
        ),
    ):
        dpo_trainset(world, tmp_path, needed - 1)
    pairs, _ = dpo_trainset(world, tmp_path, needed)  # the bound itself fits: the post is cut away
    assert pairs["prompt"].iloc[1] == (
        "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans p01\n\nPOST: \n\nTL;DR:"
    )


def test_pairs_are_the_same_from_unscored_completions(world, tmp_path):
    """dpo learns from no score: the workflow builds its pairs from the unscored completions,
    before the reward model exists; they equal those from the scored ones, byte for byte."""
    unscored = tmp_path / "unscored.parquet"
    pd.read_parquet(world["scored"]).drop(columns="reward").to_parquet(unscored, index=False)
    assert get_method("dpo").learns_from_scores is False
    build_trainset(
        get_method("dpo"),
        scored_path=str(unscored),
        posts_path=world["posts"],
        comparisons_path=world["comparisons"],
        base_path=world["base"],
        template=TEMPLATE,
        settings=TrainsetSettings(
            max_completion_tokens=MAX_COMPLETION_TOKENS, max_prompt_tokens=MAX_PROMPT_TOKENS
        ),
        seed=0,
        output_path=str(tmp_path / "dpo.parquet"),
        report_path=str(tmp_path / "dpo.json"),
    )
    assert (tmp_path / "dpo.parquet").read_bytes() == Path(world["dpo"]).read_bytes()
    assert (tmp_path / "dpo.json").read_text() == Path(world["report"]).read_text()

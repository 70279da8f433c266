"""`rloo`: prompt rows of the train posts, the reward model's rewards with the missing-EOS
penalty, and TRL 1.16's RLOOTrainer behind `train_method` (steps, resume)."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from experiment_world import (
    N_TRAIN_POSTS,
    TEMPLATE,
    tiny_train_settings,
    write_trainsets,
    write_world,
)
from reward_helpers import tiny_reward_model
from transformers import AutoModelForCausalLM, TrainerCallback

from rewardcond.methods import get_method
from rewardcond.methods.rloo import RewardModelReward, completion_rewards
from rewardcond.reward_models.scoring import load_scorer
from rewardcond.train import TrainSettings, train_method

SETTINGS = tiny_train_settings(global_batch_size=8, per_device_batch_size=8, max_steps=4)
OPTIONS = {"num_generations": 4, "max_completion_length": 6, "num_iterations": 1, "mini_batches": 1}
PENALTY = 1.0  # the default missing_eos_penalty


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("rloo")
    paths = write_world(root, tiny_tokenizer)
    paths["reward_model"] = str(root / "reward_model")
    tiny_reward_model(tiny_tokenizer, seed=1).save_pretrained(paths["reward_model"])
    tiny_tokenizer.save_pretrained(paths["reward_model"])
    return write_trainsets(root, paths, ("rloo", "sft"))


def scorer_args(world) -> dict:
    return {"kind": "train", "path_or_hub_id": world["reward_model"], "template": TEMPLATE}


@pytest.fixture(scope="module")
def scorer(world):
    return load_scorer(**scorer_args(world), device="cpu", progress=False)


def test_rows_are_the_prompts_of_the_sft_train_posts_one_each(world):
    rows = pd.read_parquet(world["rloo"])
    assert list(rows.columns) == ["post_id", "subreddit", "title", "post", "prompt"]
    assert list(rows["post_id"]) == [f"p{i:02d}" for i in range(N_TRAIN_POSTS)]
    sft = pd.read_parquet(world["sft"])
    assert list(rows["prompt"]) == list(sft["prompt"])  # rendered and shortened alike
    assert rows["prompt"].str.endswith("\n\nTL;DR:").all()
    report = json.loads(Path(world["rloo_report"]).read_text())
    assert report["sources"] == ["reference"] and report["rows"] == N_TRAIN_POSTS


def test_missing_eos_penalty_applies_exactly(scorer, tiny_tokenizer):
    eos = tiny_tokenizer.eos_token_id
    post = {"subreddit": "relationships", "title": "My roommate", "post": "She leaves dishes."}
    texts = [" roommate is messy", " roommate is messy", "", " the lazy"]
    ids = [tiny_tokenizer(text)["input_ids"] for text in texts]
    ids = [ids[0] + [eos], ids[1], [eos], ids[3]]  # finished, cut, empty, cut
    rewards, finished, empty = completion_rewards(
        scorer, [post] * 4, texts, ids, eos_token_id=eos, missing_eos_penalty=2.5
    )
    score = scorer.score([post, post], [texts[0], texts[3]])
    assert rewards == [score[0], score[0] - 2.5, None, score[1] - 2.5]
    assert list(finished) == [True, False, True, False]
    assert list(empty) == [False, False, True, False]


def test_reward_function_scores_the_post_fields_and_logs_the_shares(scorer, tiny_tokenizer):
    eos = tiny_tokenizer.eos_token_id
    reward = RewardModelReward(scorer, eos_token_id=eos, missing_eos_penalty=PENALTY)
    fields = {"subreddit": ["a", "b"], "title": ["T1", "T2"], "post": ["P1 x", "P2 y"]}
    texts = [" messy", " dog"]
    logged = []
    rewards = reward(
        prompts=["ignored", "ignored"],
        completions=texts,
        completion_ids=[[5, eos], [5, 6]],
        **fields,
        log_metric=lambda name, value: logged.append((name, value)),
        trainer_state=None,
    )
    posts = [
        {"subreddit": "a", "title": "T1", "post": "P1 x"},
        {"subreddit": "b", "title": "T2", "post": "P2 y"},
    ]
    expected = scorer.score(posts, texts)
    assert rewards == [expected[0], expected[1] - PENALTY]
    assert logged == [("rloo/missing_eos", 0.5), ("rloo/empty", 0.0)]


def test_options_are_checked():
    with pytest.raises(
        ValueError,
        match=r"method_options.rloo: num_generations must be >= 2, got 1; beta must be >= 0",
    ):
        get_method("rloo", {"num_generations": 1, "beta": -0.1})
    assert get_method("rloo").options() == {
        "num_generations": 2,
        "beta": 0.03,
        "temperature": 0.7,
        "max_completion_length": None,
        "missing_eos_penalty": 1.0,
        "num_iterations": 2,
        "mini_batches": 2,
        "rollout_batch_size": 16,
    }


def _train(world, tmp_path, settings=SETTINGS, name="rloo", callbacks=(), options=OPTIONS):
    return train_method(
        get_method("rloo", options),
        trainset_path=world["rloo"],
        base_path=world["base"],  # stands in for the sft model folder
        output_dir=str(tmp_path / name),
        checkpoint_dir=str(tmp_path / f"{name}-checkpoints"),
        settings=settings,
        seed=5,
        device="cpu",
        scorer=scorer_args(world),
        callbacks=callbacks,
    )


def test_rloo_steps_change_every_parameter_against_the_sft_reference(world, tmp_path):
    before = AutoModelForCausalLM.from_pretrained(world["base"]).state_dict()
    trainer = _train(world, tmp_path)
    from trl import RLOOTrainer

    assert isinstance(trainer, RLOOTrainer) and trainer.state.global_step == 4
    args = trainer.args
    assert (args.num_generations, args.max_completion_length, args.beta) == (4, 6, 0.03)
    assert args.generation_batch_size == 8 and args.steps_per_generation == 1
    assert (args.temperature, args.top_p, args.top_k) == (0.7, 1.0, 0)
    # The reference is the starting (sft) model, unchanged.
    for key, value in trainer.ref_model.state_dict().items():
        assert torch.equal(value, before[key]), key

    curve = pd.read_csv(tmp_path / "rloo" / "loss.csv")
    assert list(curve["step"]) == [1, 2, 3, 4]
    assert all(math.isfinite(loss) for loss in curve["loss"])
    # Every sample is cut at 6 tokens: the reward is the score minus the penalty.
    assert list(curve["completions/clipped_ratio"]) == [1.0] * 4
    assert list(curve["rloo/missing_eos"]) == [1.0] * 4
    assert curve["reward"].notna().all() and curve["kl"].notna().all()
    assert curve["kl"].iloc[0] == 0.0  # the first batch is sampled at the reference weights

    after = AutoModelForCausalLM.from_pretrained(tmp_path / "rloo").state_dict()
    assert after.keys() == before.keys()
    unchanged = [key for key in before if torch.equal(before[key], after[key])]
    assert unchanged == []
    manifest = json.loads((tmp_path / "rloo" / "manifest.json").read_text())
    assert manifest["params"]["scorer"] == scorer_args(world)
    assert set(manifest["inputs"]) == {world["rloo"], world["base"], world["reward_model"]}
    assert manifest["params"]["method_options"]["num_generations"] == 4


def test_log_probabilities_of_a_left_padded_row_are_those_of_the_row_alone(
    world, tmp_path, tiny_tokenizer
):
    # GPT-2 has learned absolute positions: without position ids counted over the mask, a
    # left-padded row would be scored at shifted positions (TRL 1.16 passes none).
    trainer = _train(world, tmp_path, TrainSettings(**{**SETTINGS.__dict__, "max_steps": 1}))
    model, eos, pad = trainer.model.eval(), tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id
    completion = tiny_tokenizer(" roommate is messy")["input_ids"] + [eos]
    prompts = [
        tiny_tokenizer(text)["input_ids"] for text in ("TL;DR:", "TITLE: My roommate\nTL;DR:")
    ]
    width = max(map(len, prompts)) + len(completion)
    rows = [[pad] * (width - len(p) - len(completion)) + p + completion for p in prompts]
    mask = [
        [0] * (width - len(p) - len(completion)) + [1] * (len(p) + len(completion)) for p in prompts
    ]
    logps, _, _ = trainer._get_per_token_logps_and_entropies(
        model, torch.tensor(rows), torch.tensor(mask), len(completion)
    )
    assert min(map(len, prompts)) < max(map(len, prompts))  # one row is padded
    for row, prompt in enumerate(prompts):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1] / trainer.args.temperature
        alone = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]
        torch.testing.assert_close(logps[row], alone, rtol=0, atol=1e-5)


def test_samples_are_decoded_rollout_batch_size_at_a_time(world, tmp_path, monkeypatch):
    from trl import RLOOTrainer

    chunks = []
    original = RLOOTrainer._generate_single_turn

    def recorded(self, prompt_ids, images, multimodal_fields):
        chunks.append(len(prompt_ids))
        return original(self, prompt_ids, images, multimodal_fields)

    monkeypatch.setattr(RLOOTrainer, "_generate_single_turn", recorded)
    settings = TrainSettings(**{**SETTINGS.__dict__, "max_steps": 4})
    options = {**OPTIONS, "rollout_batch_size": 3, "mini_batches": 2}
    trainer = _train(world, tmp_path, settings, options=options)
    # Two batches of 2 x 8 samples (4 prompts x 4), each decoded as 3 + 3 + 3 + 3 + 3 + 1.
    assert trainer.args.generation_batch_size == 16 and trainer.state.global_step == 4
    assert chunks == [3, 3, 3, 3, 3, 1] * 2


def test_a_killed_rloo_run_resumes_from_its_last_checkpoint(world, tmp_path):
    settings = TrainSettings(**{**SETTINGS.__dict__, "max_steps": 6, "save_steps": 2})

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise KeyboardInterrupt("killed after the checkpoint of step 4")

    with pytest.raises(KeyboardInterrupt):
        _train(world, tmp_path, settings, name="resumed", callbacks=[Kill()])
    assert not (tmp_path / "resumed").exists()
    assert (tmp_path / "resumed-checkpoints" / "checkpoint-4").is_dir()
    _train(world, tmp_path, settings, name="resumed")
    _train(world, tmp_path, settings, name="straight")

    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-4") and manifest["global_step"] == 6
    resumed = AutoModelForCausalLM.from_pretrained(tmp_path / "resumed").state_dict()
    straight = AutoModelForCausalLM.from_pretrained(tmp_path / "straight").state_dict()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    resumed_curve = pd.read_csv(tmp_path / "resumed" / "loss.csv")
    straight_curve = pd.read_csv(tmp_path / "straight" / "loss.csv")
    pd.testing.assert_frame_equal(resumed_curve, straight_curve)


def test_the_reward_model_is_required_and_only_for_rloo(world, tmp_path):
    with pytest.raises(ValueError, match="method 'rloo' trains against the reward model"):
        train_method(
            get_method("rloo", OPTIONS),
            trainset_path=world["rloo"],
            base_path=world["base"],
            output_dir=str(tmp_path / "out"),
            checkpoint_dir=str(tmp_path / "checkpoints"),
            settings=SETTINGS,
            seed=0,
            device="cpu",
        )
    with pytest.raises(ValueError, match="method 'sft' trains without a reward model"):
        train_method(
            get_method("sft"),
            trainset_path=world["sft"],
            base_path=world["base"],
            output_dir=str(tmp_path / "out"),
            checkpoint_dir=str(tmp_path / "checkpoints"),
            settings=SETTINGS,
            seed=0,
            device="cpu",
            scorer=scorer_args(world),
        )


@pytest.mark.parametrize(
    ("options", "settings", "message"),
    [
        (
            {**OPTIONS, "num_generations": 3},
            SETTINGS,
            r"train.global_batch_size \(8\) counts sampled summaries and must be a multiple of "
            r"method_options.rloo.num_generations \(3\)",
        ),
        (
            {**OPTIONS, "max_completion_length": 100},
            SETTINGS,
            r"the longest rloo prompt \(83 tokens\) \+ method_options.rloo.max_completion_length "
            r"\(100\) exceeds the model's context of 128 tokens",
        ),
        (
            {**OPTIONS, "max_completion_length": None},
            SETTINGS,
            "method_options.rloo.max_completion_length is null",
        ),
    ],
    ids=["batch", "context", "null-length"],
)
def test_settings_that_cannot_work_are_refused(world, tmp_path, options, settings, message):
    with pytest.raises(ValueError, match=message):
        _train(world, tmp_path, settings, options=options)
    assert not (tmp_path / "rloo").exists()

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from experiment_world import (
    N_TRAIN_POSTS,
    TEMPLATE,
    tiny_train_settings,
    write_trainsets,
    write_world,
)
from reward_helpers import tiny_reward_model

from rewardcond.methods import get_method
from rewardcond.methods.tokens import BAD, GOOD
from rewardcond.modeling import RewardConditionedLM
from rewardcond.reward_models.scoring import load_scorer
from rewardcond.rounds import (
    OnlineSettings,
    draw_targets,
    grow_pool,
    round_seed,
    run_round,
    sample_round,
    score_samples,
)
from rewardcond.train import train_method

K = 3
ONLINE = OnlineSettings(samples_per_prompt=K, max_new_tokens=8, batch_size=8)
TRAIN = tiny_train_settings(global_batch_size=8, per_device_batch_size=8, max_steps=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("rounds")
    paths = write_world(root, tiny_tokenizer)
    paths["reward_model"] = str(root / "reward_model")
    tiny_reward_model(tiny_tokenizer, seed=1).save_pretrained(paths["reward_model"])
    tiny_tokenizer.save_pretrained(paths["reward_model"])
    write_trainsets(root, paths, ("scalar", "tokens", "text"))
    for method in ("scalar", "tokens", "text"):
        paths[f"{method}_model"] = str(root / f"{method}_model")
        train_method(
            get_method(method),
            trainset_path=paths[method],
            base_path=paths["base"],
            output_dir=paths[f"{method}_model"],
            checkpoint_dir=str(root / f"{method}_checkpoints"),
            settings=TRAIN,
            seed=0,
            device="cpu",
        )
    return paths


@pytest.fixture(scope="module")
def scorer(world):
    return load_scorer(
        kind="train",
        path_or_hub_id=world["reward_model"],
        template=TEMPLATE,
        device="cpu",
        progress=False,
    )


def _sample(world, method="scalar", round_number=2, seed=5, settings=ONLINE):
    model, tokenizer = get_method(method).load_model(world[f"{method}_model"])
    pool = pd.read_parquet(world[method])
    return sample_round(
        get_method(method),
        model,
        tokenizer,
        pool,
        settings,
        seed=seed,
        round_number=round_number,
    )


def test_quantile_targets_lie_in_the_configured_quantiles_of_the_pool():
    rewards = np.arange(101, dtype="float64")  # quantile q is 100 q
    settings = OnlineSettings(target_quantiles=(0.75, 0.9))
    targets = draw_targets(rewards, 1000, settings, seed=0)
    assert targets.shape == (1000,)
    assert targets.min() >= 75.0 and targets.max() <= 90.0
    assert targets.max() - targets.min() > 14.0  # spread over the range, not one value
    assert np.array_equal(targets, draw_targets(rewards, 1000, settings, seed=0))


def test_above_max_targets_are_max_plus_sd_multiples():
    rewards = np.array([0.0, 2.0])  # max 2, population sd 1
    settings = OnlineSettings(target_draw="above_max", above_max_sd=(1.0, 1.0))
    assert draw_targets(rewards, 4, settings, seed=0).tolist() == [3.0] * 4
    settings = OnlineSettings(target_draw="above_max", above_max_sd=(0.0, 2.0))
    targets = draw_targets(rewards, 200, settings, seed=0)
    assert targets.min() >= 2.0 and targets.max() <= 4.0


def test_bad_settings_name_their_key():
    with pytest.raises(ValueError, match=r"train.online.target_draw: 'top'"):
        OnlineSettings(target_draw="top")
    with pytest.raises(ValueError, match=r"train.online.target_quantiles: \[0.9, 0.5\]"):
        OnlineSettings(target_quantiles=(0.9, 0.5))
    with pytest.raises(ValueError, match=r"train.online.pool_per_prompt: 0"):
        OnlineSettings(pool_per_prompt=0)
    with pytest.raises(ValueError, match="online rounds start at 2"):
        run_round(
            get_method("scalar"),
            model_path="m",
            pool_path="p",
            settings=ONLINE,
            scorer=None,
            seed=0,
            round_number=1,
            samples_path="s",
            output_path="o",
            report_path="r",
        )


def test_round_seed_depends_on_seed_and_round_only():
    assert round_seed(7, 2) == round_seed(7, 2)
    assert len({round_seed(7, 2), round_seed(7, 3), round_seed(8, 2)}) == 3


def test_samples_k_per_post_at_drawn_targets_reproducibly(world):
    samples = _sample(world)
    assert len(samples) == N_TRAIN_POSTS * K
    assert list(samples["post_id"]) == [f"p{i:02d}" for i in range(N_TRAIN_POSTS) for _ in range(K)]
    assert list(samples["sample"]) == list(range(K)) * N_TRAIN_POSTS
    pool = pd.read_parquet(world["scalar"])
    low, high = np.quantile(pool["reward"], [0.75, 1.0])
    assert samples["target_reward"].between(low, high).all()
    assert (samples["n_tokens"] <= 8).all()
    again = _sample(world)
    pd.testing.assert_frame_equal(samples, again)
    other_round = _sample(world, round_number=3)
    assert not np.array_equal(other_round["target_reward"], samples["target_reward"])


def test_text_writes_each_drawn_target_with_round_ones_scaler(world, monkeypatch):
    method = get_method("text")
    model, tokenizer = method.load_model(world["text_model"])
    seen = []
    original = method.complete

    def spy(model, tokenizer, prompts, target_rewards, **kwargs):
        seen.extend(prompts)
        assert target_rewards is None  # a plain LM: the target is in the text only
        return original(model, tokenizer, prompts, target_rewards, **kwargs)

    monkeypatch.setattr(method, "complete", spy)
    pool = pd.read_parquet(world["text"])
    samples = sample_round(method, model, tokenizer, pool, ONLINE, seed=5, round_number=2)
    assert len(samples) == N_TRAIN_POSTS * K
    assert seen == [
        method.prefix(t) + p
        for t, p in zip(samples["target_reward"], samples["prompt"], strict=True)
    ]
    low, high = np.quantile(pool["reward"], [0.75, 1.0])
    assert samples["target_reward"].between(low, high).all()
    assert samples["target_reward"].nunique() > len(samples) // 2  # a draw per sample


def test_tokens_samples_at_good(world):
    samples = _sample(world, method="tokens")
    assert len(samples) == N_TRAIN_POSTS * K
    assert samples["target_reward"].isna().all()


def test_samples_are_scored_as_score_completions_scores(world, scorer):
    samples = _sample(world)
    samples.loc[0, "completion"] = "   "  # empty: skipped and counted (on_empty error raises)
    with pytest.raises(ValueError, match="1 empty summaries"):
        score_samples(samples, scorer)
    skipping = load_scorer(
        kind="train",
        path_or_hub_id=world["reward_model"],
        template=TEMPLATE,
        device="cpu",
        progress=False,
        on_empty="skip",
    )
    scored, counts = score_samples(samples, skipping)
    assert len(scored) == len(samples) - 1
    assert counts["n_in"] == len(samples) and counts["n_skipped_empty"] == 1
    assert counts["n_unfinished"] == int((~scored["finished"]).sum())
    posts = scored[["subreddit", "title", "post"]].to_dict("records")
    expected = scorer.score(posts, scored["completion"].tolist())
    np.testing.assert_allclose(scored["reward"], expected, rtol=0, atol=1e-6)


def test_the_pool_keeps_all_or_the_best_per_post(world):
    pool = pd.read_parquet(world["scalar"])
    scored = _sample(world).assign(reward=np.linspace(-5.0, 10.0, N_TRAIN_POSTS * K))
    grown, counts = grow_pool(get_method("scalar"), pool, scored, ONLINE, round_number=2)
    assert len(grown) == len(pool) + len(scored)
    assert counts == {
        "pool_in": len(pool),
        "added": len(scored),
        "dropped_by_bound": 0,
        "pool_out": len(grown),
    }
    assert grown["round"].tolist() == [1] * len(pool) + [2] * len(scored)
    assert (grown["source"].iloc[len(pool) :] == "online").all()
    assert grown["completion_id"].iloc[len(pool)] == "r2/p00/0"
    assert grown["policy"].iloc[-1] == "scalar-r2"

    bounded = OnlineSettings(samples_per_prompt=K, pool_per_prompt=2)
    kept, counts = grow_pool(get_method("scalar"), pool, scored, bounded, round_number=2)
    assert len(kept) == 2 * N_TRAIN_POSTS
    assert counts["dropped_by_bound"] == len(pool) + len(scored) - 2 * N_TRAIN_POSTS
    everything = pd.concat([pool.assign(round=1), scored.assign(round=2)], ignore_index=True)
    for post_id, rows in kept.groupby("post_id"):
        best = everything[everything["post_id"] == post_id]["reward"].nlargest(2)
        assert sorted(rows["reward"]) == sorted(best)


def test_tokens_relabels_good_on_the_grown_pool(world):
    pool = pd.read_parquet(world["tokens"])
    scored = _sample(world, method="tokens").assign(reward=100.0)
    grown, _ = grow_pool(get_method("tokens"), pool, scored, ONLINE, round_number=2)
    assert (grown["control"].iloc[len(pool) :] == GOOD).all()
    assert (grown["control"] == BAD).sum() == int(
        (grown["reward"] < grown["reward"].quantile(0.5)).sum()
    )


def test_a_round_continues_the_model_and_keeps_its_scaler(world, scorer, tmp_path):
    report = run_round(
        get_method("scalar"),
        model_path=world["scalar_model"],
        pool_path=world["scalar"],
        settings=ONLINE,
        scorer=scorer,
        seed=5,
        round_number=2,
        samples_path=str(tmp_path / "samples.parquet"),
        output_path=str(tmp_path / "pool.parquet"),
        report_path=str(tmp_path / "report.json"),
    )
    assert json.loads(Path(tmp_path / "report.json").read_text()) == report
    assert report["samples"] == N_TRAIN_POSTS * K and report["prompts"] == N_TRAIN_POSTS
    pool = pd.read_parquet(tmp_path / "pool.parquet")
    assert len(pool) == len(pd.read_parquet(world["scalar"])) + report["n_scored"]
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    assert report["sampled_tokens"] == int(samples["n_tokens"].sum())

    trainer = train_method(
        get_method("scalar"),
        trainset_path=str(tmp_path / "pool.parquet"),
        base_path=world["scalar_model"],
        output_dir=str(tmp_path / "model-r2"),
        checkpoint_dir=str(tmp_path / "checkpoints-r2"),
        settings=TRAIN,
        seed=0,
        device="cpu",
        continue_training=True,
    )
    assert trainer.state.global_step == 2
    before = RewardConditionedLM.from_pretrained(world["scalar_model"])
    after = RewardConditionedLM.from_pretrained(str(tmp_path / "model-r2"))
    assert after.scaler.to_dict() == before.scaler.to_dict()
    refit = get_method("scalar").build_model(world["base"], pool)[0].scaler.to_dict()
    assert refit != before.scaler.to_dict()  # the grown pool would have moved it
    manifest = json.loads((tmp_path / "model-r2" / "manifest.json").read_text())
    assert manifest["params"]["continue_training"] is True


def test_a_round_model_name_is_its_method_under_that_name():
    from rewardcond.modules import method_module, split_round

    assert split_round("scalar-r3") == ("scalar", 3)
    assert split_round("scalar") == ("scalar", 1)
    assert split_round("scalar-r1") == ("scalar-r1", 1)  # round 1 is the plain method's name
    assert split_round("bon16") == ("bon16", 1)
    assert method_module("text-r12") == "text"
    method = get_method("tokens-r2", {"good_quantile": 0.25})
    assert method.name == "tokens-r2" and method.good_quantile == 0.25
    assert get_method("tokens").name == "tokens"  # the class keeps its name

"""`text`: the scaled reward as a line of digits in front of the prompt, same rows as `scalar`."""

import json

import numpy as np
import pandas as pd
import pytest
from experiment_world import (
    MAX_PROMPT_TOKENS,
    TEMPLATE,
    write_trainsets,
    write_world,
)

from rewardcond import decoding
from rewardcond.methods import Condition, get_method
from rewardcond.methods.text import SCALER_ATTRIBUTE, reward_line
from rewardcond.summaries import GenerateSettings, generate_method
from rewardcond.trainset import draw_eval_prompts


@pytest.mark.parametrize(
    ("scaled", "precision", "line"),
    [
        (1.25, 2, "REWARD: 1.25\n"),
        (1.0, 2, "REWARD: 1.00\n"),
        (-0.4567, 2, "REWARD: -0.46\n"),
        (2.0, 0, "REWARD: 2\n"),
        (0.123456, 3, "REWARD: 0.123\n"),
        (-0.001, 2, "REWARD: 0.00\n"),
        (-0.4, 0, "REWARD: 0\n"),
    ],
)
def test_reward_line_fixed_precision(scaled, precision, line):
    assert reward_line(scaled, precision) == line


def test_precision_option_is_checked():
    with pytest.raises(ValueError, match="method_options.text.precision must be an integer >= 0"):
        get_method("text", {"precision": -1})
    with pytest.raises(TypeError, match="unexpected keyword argument 'scale'"):
        get_method("text", {"scale": "minmax"})


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("text")
    paths = write_world(root, tiny_tokenizer)
    return write_trainsets(root, paths, ("scalar", "text"))


def test_text_trains_on_the_rows_of_scalar(world):
    scalar, text = pd.read_parquet(world["scalar"]), pd.read_parquet(world["text"])
    assert len(text) == 48 and text.equals(scalar)


def test_example_puts_the_scaled_reward_line_first(world):
    trainset = pd.read_parquet(world["text"])
    method = get_method("text", {"precision": 3})
    model, _ = method.build_model(world["base"], trainset)
    rewards = trainset["reward"].to_numpy()
    mean, std = rewards.mean(), rewards.std()
    # scalar's scaler, fitted on the same rows: the two see the same scaled reward.
    scalar_model, _ = get_method("scalar").build_model(world["base"], trainset)
    assert scalar_model.scaler.to_dict() == method.scaler.to_dict()
    assert getattr(model.config, SCALER_ATTRIBUTE) == {
        "kind": "standardize",
        "shift": pytest.approx(mean),
        "scale": pytest.approx(std),
    }
    for row in trainset.itertuples(index=False):
        example = method.example(row)
        scaled = (row.reward - mean) / std
        line = f"REWARD: {scaled:.3f}\n" if round(scaled, 3) != 0 else "REWARD: 0.000\n"
        assert example.prompt == line + row.prompt
        assert example.completion == row.completion and example.target_reward is None


def test_conditions_are_the_scalar_targets_with_their_line(world, tmp_path):
    trainset = pd.read_parquet(world["text"])
    method = get_method("text")
    model, tokenizer = method.build_model(world["base"], trainset)
    model.save_pretrained(tmp_path / "text")
    tokenizer.save_pretrained(tmp_path / "text")
    targets = [{"name": "q50", "value": 1.0}, {"name": "max+1sd", "value": 4.0}]

    fresh = get_method("text")
    with pytest.raises(RuntimeError, match="build_model or load_model first"):
        fresh.conditions(targets)
    fresh.load_model(str(tmp_path / "text"))
    mean, std = trainset["reward"].mean(), trainset["reward"].std(ddof=0)
    assert fresh.conditions(targets) == [
        Condition("q50", 1.0, f"REWARD: {(1.0 - mean) / std:.2f}\n"),
        Condition("max+1sd", 4.0, f"REWARD: {(4.0 - mean) / std:.2f}\n"),
    ]
    scalar_targets = get_method("scalar").conditions(targets)
    assert [(c.name, c.target_reward) for c in fresh.conditions(targets)] == [
        (c.name, c.target_reward) for c in scalar_targets
    ]


def test_generation_of_a_plain_model_at_written_targets(world, tmp_path, monkeypatch):
    seen = []

    def spy(model, tokenizer, prompts, target_rewards, **kwargs):
        seen.append((list(prompts), target_rewards))
        return real_complete(model, tokenizer, prompts, target_rewards, **kwargs)

    real_complete = decoding.complete
    monkeypatch.setattr(decoding, "complete", spy)
    trainset = pd.read_parquet(world["text"])
    model, tokenizer = get_method("text").build_model(world["base"], trainset)
    model.save_pretrained(tmp_path / "text")
    tokenizer.save_pretrained(tmp_path / "text")
    draw_eval_prompts(world["posts"], 3, seed=0, output_path=str(tmp_path / "prompts.parquet"))
    targets = [{"name": "q50", "value": 1.0}, {"name": "q100", "value": 3.1}]
    (tmp_path / "targets.json").write_text(json.dumps(targets))
    table = generate_method(
        get_method("text"),
        model_path=str(tmp_path / "text"),
        prompts_path=str(tmp_path / "prompts.parquet"),
        targets_path=str(tmp_path / "targets.json"),
        output_path=str(tmp_path / "generations.parquet"),
        template=TEMPLATE,
        settings=GenerateSettings(max_new_tokens=4, max_prompt_tokens=MAX_PROMPT_TOKENS),
        seed=0,
        device="cpu",
    )
    assert len(table) == 6 and (table["method"] == "text").all()
    assert list(table["target_name"]) == ["q50"] * 3 + ["q100"] * 3
    assert np.array_equal(table["target_reward"], [1.0] * 3 + [3.1] * 3)
    assert (table["n_candidates"] == 1).all()
    scaled = (np.array([1.0, 3.1]) - trainset["reward"].mean()) / trainset["reward"].std(ddof=0)
    assert [rewards for _, rewards in seen] == [None, None]
    for (prompts, _), value in zip(seen, scaled, strict=True):
        assert all(p.startswith(f"REWARD: {value:.2f}\nSUBREDDIT: r/") for p in prompts)

import math

import pandas as pd
import pytest
from experiment_world import TEMPLATE, write_world

from rewardcond.methods import Condition, Method, available_methods, get_method, register
from rewardcond.methods import base as methods_base
from rewardcond.methods.tokens import BAD, GOOD

TARGETS = [
    {"name": "q50", "value": 0.5, "in_range": True},
    {"name": "max+1sd", "value": 3.0, "in_range": False},
]


def test_registry_finds_every_method_module_and_rejects_unknown_names():
    assert {"scalar", "sft", "tokens"} <= set(available_methods())
    with pytest.raises(KeyError, match="unknown method 'ppo'"):
        get_method("ppo")
    with pytest.raises(TypeError, match="good_quantil"):
        get_method("tokens", {"good_quantil": 0.5})
    with pytest.raises(ValueError, match="method_options.tokens.good_quantile"):
        get_method("tokens", {"good_quantile": 1.5})


def test_a_new_method_registers_without_touching_the_others(monkeypatch):
    monkeypatch.setattr(methods_base, "_REGISTRY", dict(methods_base._REGISTRY))

    @register
    class Echo(Method):
        name = "echo-test"

    assert isinstance(get_method("echo-test"), Echo)
    with pytest.raises(ValueError, match="registered twice"):

        @register
        class Other(Method):
            name = "echo-test"


def test_conditions_one_pass_per_target_or_one_without():
    assert get_method("scalar").conditions(TARGETS) == [
        Condition("q50", 0.5),
        Condition("max+1sd", 3.0),
    ]
    (sft,) = get_method("sft").conditions(TARGETS)
    assert sft.name == "none" and math.isnan(sft.target_reward) and sft.prefix == ""
    (tokens,) = get_method("tokens").conditions(TARGETS)
    assert tokens.name == "none" and math.isnan(tokens.target_reward) and tokens.prefix == GOOD


def test_tokens_labels_rows_by_the_reward_quantile():
    rows = pd.DataFrame(
        {"reward": [0.0, 1.0, 2.0, 3.0, 4.0], "prompt": ["P"] * 5, "completion": [" c"] * 5}
    )
    method = get_method("tokens", {"good_quantile": 0.6})
    assert method.threshold(rows["reward"]) == pytest.approx(2.4)
    labelled = method.label_rows(rows)
    assert list(labelled["control"]) == [BAD, BAD, BAD, GOOD, GOOD]
    example = method.example(next(labelled.itertuples(index=False)))
    assert example.prompt == BAD + "P" and example.target_reward is None
    scalar_example = get_method("scalar").example(next(labelled.itertuples(index=False)))
    assert scalar_example.prompt == "P" and scalar_example.target_reward == 0.0


def test_tokens_adds_exactly_two_tokens_to_tokenizer_and_embeddings(tmp_path, tiny_tokenizer):
    world = write_world(tmp_path, tiny_tokenizer)
    model, tokenizer = get_method("tokens").build_model(world["base"], pd.DataFrame())
    assert len(tokenizer) == len(tiny_tokenizer) + 2
    assert model.get_input_embeddings().num_embeddings == len(tiny_tokenizer) + 2
    prompt = TEMPLATE.format(subreddit="s", title="t", post="p")
    ids = tokenizer(GOOD + prompt)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids(GOOD) == len(tiny_tokenizer)
    assert ids[1:] == tiny_tokenizer(prompt)["input_ids"]
    assert tokenizer.convert_tokens_to_ids(BAD) == len(tiny_tokenizer) + 1

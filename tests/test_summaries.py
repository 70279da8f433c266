import json

import pandas as pd
import pytest
from experiment_world import MAX_PROMPT_TOKENS, TEMPLATE, write_world

from rewardcond.methods import get_method
from rewardcond.methods.tokens import GOOD
from rewardcond.summaries import GenerateSettings, generate_method
from rewardcond.tables import GENERATION_COLUMNS
from rewardcond.trainset import draw_eval_prompts

TARGETS = [
    {"name": "q50", "value": 0.5, "in_range": True},
    {"name": "q100", "value": 2.0, "in_range": True},
    {"name": "max+1sd", "value": 3.0, "in_range": False},
]
N_PROMPTS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    """Untrained models saved as each method saves them (generation does not care)."""
    root = tmp_path_factory.mktemp("world")
    paths = write_world(root, tiny_tokenizer)
    draw_eval_prompts(
        paths["posts"], N_PROMPTS, seed=0, output_path=str(root / "eval_prompts.parquet")
    )
    (root / "targets.json").write_text(json.dumps(TARGETS))
    trainset = pd.DataFrame({"reward": [0.0, 1.0, 2.0]})
    for method in ("scalar", "sft", "tokens"):
        model, tokenizer = get_method(method).build_model(paths["base"], trainset)
        model.save_pretrained(root / method)
        tokenizer.save_pretrained(root / method)
    return root


def _generate(world, tmp_path, method, settings):
    return generate_method(
        get_method(method),
        model_path=str(world / method),
        prompts_path=str(world / "eval_prompts.parquet"),
        targets_path=str(world / "targets.json"),
        output_path=str(tmp_path / f"{method}.parquet"),
        template=TEMPLATE,
        settings=settings,
        seed=0,
        device="cpu",
    )


@pytest.mark.parametrize("method", ["scalar", "sft", "tokens"])
def test_generations_follow_the_contract(world, tmp_path, method):
    settings = GenerateSettings(max_new_tokens=5, max_prompt_tokens=MAX_PROMPT_TOKENS)
    table = _generate(world, tmp_path, method, settings)
    assert table.equals(pd.read_parquet(tmp_path / f"{method}.parquet"))
    assert list(table.columns) == list(GENERATION_COLUMNS)
    prompts = pd.read_parquet(world / "eval_prompts.parquet")
    if method == "scalar":
        assert len(table) == N_PROMPTS * len(TARGETS)
        assert list(table["target_name"].unique()) == [t["name"] for t in TARGETS]
        assert list(table.groupby("target_name", sort=False)["target_reward"].first()) == [
            t["value"] for t in TARGETS
        ]
    else:
        assert len(table) == N_PROMPTS
        assert set(table["target_name"]) == {"none"} and table["target_reward"].isna().all()
    for _, group in table.groupby("target_name"):
        assert list(group["post_id"]) == list(prompts["post_id"])
    assert (table["method"] == method).all()
    assert (table["sample"] == 0).all() and (table["n_candidates"] == 1).all()
    assert table["n_tokens"].between(0, 5).all()
    assert (table.loc[~table["finished"], "n_tokens"] == 5).all()
    assert table.dtypes["finished"] == "bool" and table.dtypes["n_tokens"] == "int64"
    assert GOOD not in "".join(table["text"])


def test_sampling_draws_several_samples_per_prompt_and_target(world, tmp_path):
    settings = GenerateSettings(
        max_new_tokens=4, do_sample=True, num_samples=2, max_prompt_tokens=MAX_PROMPT_TOKENS
    )
    table = _generate(world, tmp_path, "scalar", settings)
    assert len(table) == N_PROMPTS * len(TARGETS) * 2
    assert table.groupby(["target_name", "sample"]).size().eq(N_PROMPTS).all()
    again = _generate(world, tmp_path, "scalar", settings)
    assert again.equals(table)


def test_greedy_with_several_samples_is_refused():
    with pytest.raises(ValueError, match="generate.num_samples = 2 with greedy"):
        GenerateSettings(num_samples=2)

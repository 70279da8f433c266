"""`bon<N>`: the registry resolves the family; best-of-N keeps the toy scorer's argmax."""

import json

import numpy as np
import pandas as pd
import pytest
from experiment_world import MAX_PROMPT_TOKENS, TEMPLATE, write_world
from transformers import AutoModelForCausalLM

from rewardcond.decoding import complete
from rewardcond.methods import available_methods, get_method
from rewardcond.methods.bon import best_of_n, pick_best
from rewardcond.summaries import GenerateSettings, generate_method
from rewardcond.trainset import draw_eval_prompts


def test_pick_best_is_argmax_per_group_of_n():
    scores = np.array([0.1, 0.9, 0.3, -1.0, -2.0, -0.5, 4.0, 4.0, 1.0])
    assert pick_best(scores, 3).tolist() == [1, 5, 6]
    assert pick_best(scores, 1).tolist() == list(range(9))


def test_pick_best_refuses_ragged_groups_and_nan():
    with pytest.raises(ValueError, match=r"groups of n=4 scores, got shape \(9,\)"):
        pick_best(np.zeros(9), 4)
    with pytest.raises(ValueError, match="1 candidate scores are NaN"):
        pick_best(np.array([0.0, np.nan]), 2)


def test_registry_resolves_bon_n_and_rejects_other_spellings():
    assert "bon<N>" in available_methods()
    for name, n in (("bon4", 4), ("bon16", 16), ("bon1", 1)):
        method = get_method(name, {"temperature": 0.7})
        assert (method.name, method.n_candidates, method.temperature) == (name, n, 0.7)
        assert method.options() == {"n": n, "temperature": 0.7, "top_p": 1.0}
    for name in ("bonX", "bon0", "bon04", "bon", "bon4x", "xbon4"):
        with pytest.raises(KeyError, match=rf"unknown method '{name}'; registered methods: \["):
            get_method(name)
    with pytest.raises(TypeError, match=r"method 'bon4' sets \['n'\] by its name"):
        get_method("bon4", {"n": 8})
    with pytest.raises(ValueError, match="method_options.bon needs temperature > 0"):
        get_method("bon4", {"temperature": 0.0})
    with pytest.raises(TypeError, match="bon4 trains nothing"):
        get_method("bon4").build_model("unused", None)


class ToyScorer:
    """Reward = number of distinct characters of the summary; records what it was asked."""

    def __init__(self):
        self.calls = []

    def score(self, posts, summaries):
        self.calls.append((list(posts), list(summaries)))
        return np.array([float(len(set(s))) for s in summaries])


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("bon")
    paths = write_world(root, tiny_tokenizer)
    draw_eval_prompts(paths["posts"], 3, seed=0, output_path=str(root / "prompts.parquet"))
    (root / "targets.json").write_text(json.dumps([{"name": "q50", "value": 0.5}]))
    paths["prompts"], paths["targets"] = str(root / "prompts.parquet"), str(root / "targets.json")
    return paths


def test_best_of_n_keeps_the_argmax_of_the_scorer(world, tiny_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(world["base"])
    prompts = [TEMPLATE.format(subreddit="s", title=f"t{i}", post="p") for i in range(3)]
    posts = [{"subreddit": "s", "title": f"t{i}", "post": "p"} for i in range(3)]
    sampling = dict(max_new_tokens=6, temperature=1.0, top_p=1.0, batch_size=4, seed=5)
    scorer = ToyScorer()
    best, scores, generated = best_of_n(
        model, tiny_tokenizer, prompts, posts, scorer, n=4, **sampling
    )
    # The same seeded sampling, redone by hand: 4 consecutive candidates per prompt.
    candidates = complete(
        model,
        tiny_tokenizer,
        [p for p in prompts for _ in range(4)],
        do_sample=True,
        **sampling,
    )
    nonempty = [c for c in candidates if c.text.strip()]
    assert scorer.calls[0][1] == [c.text for c in nonempty]
    assert scorer.calls[0][0] == [posts[i // 4] for i, c in enumerate(candidates) if c.text.strip()]
    for i in range(3):
        group = candidates[4 * i : 4 * i + 4]
        values = [len(set(c.text)) if c.text.strip() else -np.inf for c in group]
        assert best[i] == group[int(np.argmax(values))]
        assert scores[i] == max(values)
        assert generated[i] == sum(len(c.token_ids) for c in group)
    assert len({c.text for c in candidates}) > 3  # sampled, not greedy copies


def test_generate_records_n_candidates_and_needs_a_scorer(world, tmp_path):
    kwargs = dict(
        model_path=world["base"],  # stands in for the sft model folder
        prompts_path=world["prompts"],
        targets_path=world["targets"],
        output_path=str(tmp_path / "bon4.parquet"),
        template=TEMPLATE,
        settings=GenerateSettings(max_new_tokens=5, max_prompt_tokens=MAX_PROMPT_TOKENS),
        seed=0,
        device="cpu",
    )
    with pytest.raises(ValueError, match="method 'bon4' needs a scorer"):
        generate_method(get_method("bon4"), **kwargs)
    scorer = ToyScorer()
    table = generate_method(get_method("bon4"), scorer=scorer, **kwargs)
    assert len(table) == 3 and (table["method"] == "bon4").all()
    assert (table["n_candidates"] == 4).all() and (table["target_name"] == "none").all()
    assert table["target_reward"].isna().all()
    # Each kept summary scores the best among the (at most 4) candidates of its post.
    ((posts, summaries),) = scorer.calls
    prompts = pd.read_parquet(world["prompts"])
    for row, text in zip(prompts.itertuples(index=False), table["text"], strict=True):
        asked = [s for p, s in zip(posts, summaries, strict=True) if p["title"] == row.title]
        assert 1 <= len(asked) <= 4 and text in asked
        assert len(set(text)) == max(len(set(s)) for s in asked)

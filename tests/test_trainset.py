import json
import math

import numpy as np
import pandas as pd
import pytest
from experiment_world import (
    MAX_COMPLETION_TOKENS,
    MAX_PROMPT_TOKENS,
    N_TRAIN_POSTS,
    TEMPLATE,
    write_world,
)

from rewardcond.methods import get_method
from rewardcond.trainset import (
    TrainsetSettings,
    build_targets,
    build_trainset,
    draw_eval_prompts,
    rebalance,
    target_rewards,
)

SETTINGS = TrainsetSettings(
    max_completion_tokens=MAX_COMPLETION_TOKENS, max_prompt_tokens=MAX_PROMPT_TOKENS
)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    return write_world(tmp_path_factory.mktemp("world"), tiny_tokenizer)


def _build(world, tmp_path, method, settings=SETTINGS):
    return build_trainset(
        get_method(method),
        scored_path=world["scored"],
        posts_path=world["posts"],
        base_path=world["base"],
        template=TEMPLATE,
        settings=settings,
        seed=0,
        output_path=str(tmp_path / f"{method}.parquet"),
        report_path=str(tmp_path / f"{method}.json"),
    )


def test_filters_count_every_skip_and_keep_train_rows_only(world, tmp_path, tiny_tokenizer):
    rows, report = _build(world, tmp_path, "scalar")
    assert report["filter"] == {
        "in": N_TRAIN_POSTS * 5 + 3,
        "duplicate": N_TRAIN_POSTS,
        "completion_too_short": 1,
        "completion_too_long": 1,
        "prompt_too_long": 1,
        "out": N_TRAIN_POSTS * 4,
    }
    assert report["rows"] == len(rows) == N_TRAIN_POSTS * 4
    assert set(rows["post_id"]) == {f"p{i:02d}" for i in range(N_TRAIN_POSTS)}
    assert rows.groupby("post_id").size().eq(4).all()
    assert not rows.duplicated(["post_id", "completion"]).any()
    lengths = [len(tiny_tokenizer(text)["input_ids"]) for text in rows["completion"]]
    assert min(lengths) >= 1 and max(lengths) <= MAX_COMPLETION_TOKENS
    prompt_lengths = [len(tiny_tokenizer(text)["input_ids"]) for text in rows["prompt"]]
    assert max(prompt_lengths) <= MAX_PROMPT_TOKENS
    assert rows["prompt"].iloc[0].startswith("SUBREDDIT: r/relationships\n\nTITLE: ")
    assert rows["prompt"].iloc[0].endswith("\n\nTL;DR:")
    assert pd.read_parquet(tmp_path / "scalar.parquet").equals(rows)
    assert json.loads((tmp_path / "scalar.json").read_text()) == report


def test_dedupe_off_keeps_duplicates(world, tmp_path):
    settings = TrainsetSettings(
        max_completion_tokens=MAX_COMPLETION_TOKENS,
        max_prompt_tokens=MAX_PROMPT_TOKENS,
        dedupe=False,
    )
    rows, report = _build(world, tmp_path, "scalar", settings)
    assert "duplicate" not in report["filter"]
    assert len(rows) == N_TRAIN_POSTS * 5


def test_sft_learns_from_references_only(world, tmp_path):
    rows, report = _build(world, tmp_path, "sft")
    assert report["sources"] == ["reference"]
    assert len(rows) == N_TRAIN_POSTS
    assert set(rows["source"]) == {"reference"}
    assert set(rows["completion"]) == {" I asked twice."}


def test_rebalance_resamples_each_reward_bin_to_equal_counts():
    rows = pd.DataFrame({"reward": [0.0] * 8 + [0.5] * 2 + [1.0], "i": range(11)})
    balanced, sizes = rebalance(rows, bins=2, per_bin=None, seed=0)
    assert sizes == {"bin0": 8, "bin1": 3}
    # Mean non-empty bin count: round(11 / 2) = 6 rows per bin.
    assert (balanced["reward"] < 0.5).sum() == 6 and (balanced["reward"] >= 0.5).sum() == 6
    assert set(balanced.loc[balanced["reward"] >= 0.5, "i"]) == {8, 9, 10}  # all kept, then drawn
    assert balanced.loc[balanced["reward"] < 0.5, "i"].is_unique  # subsampled without replacement
    fixed, sizes = rebalance(rows, bins=4, per_bin=5, seed=0)
    assert sizes == {"bin0": 8, "bin1": 0, "bin2": 2, "bin3": 1}
    assert fixed["reward"].value_counts().to_dict() == {0.0: 5, 0.5: 5, 1.0: 5}
    again, _ = rebalance(rows, bins=2, per_bin=None, seed=0)
    assert again.equals(balanced)
    with pytest.raises(ValueError, match="rebalance_bins must be >= 1"):
        rebalance(rows, bins=0, per_bin=None, seed=0)


def test_trainset_rebalances_conditioned_methods_only(world, tmp_path):
    settings = TrainsetSettings(
        max_completion_tokens=MAX_COMPLETION_TOKENS,
        max_prompt_tokens=MAX_PROMPT_TOKENS,
        rebalance_bins=3,
        rebalance_per_bin=10,
    )
    rows, report = _build(world, tmp_path, "scalar", settings)
    assert sum(report["rebalance_bins"].values()) == N_TRAIN_POSTS * 4
    assert len(rows) == 10 * sum(n > 0 for n in report["rebalance_bins"].values())
    sft_rows, sft_report = _build(world, tmp_path, "sft", settings)
    assert "rebalance_bins" not in sft_report and len(sft_rows) == N_TRAIN_POSTS


def test_target_rewards_on_a_known_distribution():
    targets = target_rewards(np.arange(11.0))
    sd = math.sqrt(10.0)  # population sd of 0..10
    assert targets == [
        {"name": "q05", "value": 0.5, "in_range": True},
        {"name": "q25", "value": 2.5, "in_range": True},
        {"name": "q50", "value": 5.0, "in_range": True},
        {"name": "q75", "value": 7.5, "in_range": True},
        {"name": "q95", "value": 9.5, "in_range": True},
        {"name": "q100", "value": 10.0, "in_range": True},
        {"name": "max+1sd", "value": 10.0 + sd, "in_range": False},
        {"name": "max+2sd", "value": 10.0 + 2 * sd, "in_range": False},
    ]
    with pytest.raises(ValueError, match="finite"):
        target_rewards([1.0, float("nan")])


def test_targets_come_from_the_filtered_training_pool(world, tmp_path):
    output = tmp_path / "targets.json"
    targets = build_targets(
        scored_path=world["scored"],
        posts_path=world["posts"],
        base_path=world["base"],
        template=TEMPLATE,
        settings=SETTINGS,
        quantiles=[0.5, 1.0],
        beyond_max_sd=[1],
        output_path=str(output),
    )
    rows, _ = _build(world, tmp_path, "scalar")
    assert targets == target_rewards(rows["reward"], [0.5, 1.0], [1])
    # The 5.0 rewards of filtered-out rows and 9.0 of other splits do not set the maximum.
    assert targets[1] == {
        "name": "q100",
        "value": 2.0 + 0.1 * (N_TRAIN_POSTS - 1),
        "in_range": True,
    }
    assert json.loads(output.read_text()) == targets


def test_eval_prompts_are_seeded_and_from_valid2_else_test(world, tmp_path):
    first = draw_eval_prompts(world["posts"], 4, seed=1, output_path=str(tmp_path / "a.parquet"))
    again = draw_eval_prompts(world["posts"], 4, seed=1, output_path=str(tmp_path / "b.parquet"))
    other = draw_eval_prompts(world["posts"], 4, seed=2, output_path=str(tmp_path / "c.parquet"))
    assert first.equals(again) and not first.equals(other)
    assert list(first.columns) == ["post_id", "subreddit", "title", "post", "reference", "pool"]
    assert set(first["post_id"]) <= {f"v{i:02d}" for i in range(6)} and set(first["pool"]) == {
        "valid2"
    }
    assert first["reference"].notna().all()
    assert pd.read_parquet(tmp_path / "a.parquet").equals(first)
    # valid2 holds 6 posts with a reference and test 5: neither pool has 7.
    with pytest.raises(ValueError, match="generate.n_prompts = 7"):
        draw_eval_prompts(world["posts"], 7, seed=1, output_path=str(tmp_path / "d.parquet"))


def test_eval_prompts_fall_back_to_test_posts(world, tmp_path):
    posts = pd.read_parquet(world["posts"])
    posts.loc[posts["comparison_split"] == "valid2", "comparison_split"] = None
    path = tmp_path / "posts.parquet"
    posts.to_parquet(path, index=False)
    drawn = draw_eval_prompts(str(path), 5, seed=1, output_path=str(tmp_path / "e.parquet"))
    assert sorted(drawn["post_id"]) == [f"t{i:02d}" for i in range(5)]
    assert set(drawn["pool"]) == {"test"}


def _with_cnndm(world, root):
    """The world with a `domain` column and a CNN/DailyMail article among the train rows: two
    comparison summaries with rewards (9.0) above every TL;DR one, a valid2 article with a
    reference, and a train comparison of the article."""
    posts = pd.read_parquet(world["posts"]).assign(domain="tldr")
    article = {
        "post_id": "cnn1", "subreddit": "dailymail", "title": "Bakery wins prize",
        "post": "A village bakery won a prize.", "reference": None, "split": None,
        "comparison_split": "train", "domain": "cnndm",
    }  # fmt: skip
    held_out = {**article, "post_id": "cnn2", "reference": " a prize", "comparison_split": "valid2"}
    posts = pd.concat([posts, pd.DataFrame([article, held_out])], ignore_index=True)
    scored = pd.read_parquet(world["scored"]).assign(domain="tldr")
    extra = scored.iloc[:2].assign(
        post_id="cnn1", text=[" bakery wins", " a prize"], source="comparison", split="train",
        reward=9.0, domain="cnndm", completion_id=["c" * 16, "d" * 16],
    )  # fmt: skip
    scored = pd.concat([scored, extra], ignore_index=True)
    comparisons = pd.DataFrame(
        {"post_id": ["p00", "cnn1"], "summary_0": [" roommate is messy", " bakery wins"],
         "summary_1": [" the quick brown fox", " a prize"], "choice": [1, 0],
         "split": "train", "domain": ["tldr", "cnndm"]}
    )  # fmt: skip
    paths = {**world, "posts": str(root / "posts.parquet"), "scored": str(root / "scored.parquet")}
    paths["comparisons"] = str(root / "comparisons.parquet")
    posts.to_parquet(paths["posts"], index=False)
    scored.to_parquet(paths["scored"], index=False)
    comparisons.to_parquet(paths["comparisons"], index=False)
    return paths


def test_cnndm_rows_are_never_trained_on_and_are_counted(world, tmp_path):
    mixed = _with_cnndm(world, tmp_path)
    rows, report = _build(mixed, tmp_path, "scalar")
    plain_rows, plain_report = _build(world, tmp_path / "plain", "scalar")
    assert report["excluded_domains"] == {"cnndm": 2}
    assert plain_report["excluded_domains"] == {}
    assert report["filter"] == plain_report["filter"]
    assert rows.equals(plain_rows) and "cnn1" not in set(rows["post_id"])
    pairs, pair_report = build_trainset(
        get_method("dpo"),
        scored_path=mixed["scored"],
        posts_path=mixed["posts"],
        comparisons_path=mixed["comparisons"],
        base_path=mixed["base"],
        template=TEMPLATE,
        settings=SETTINGS,
        seed=0,
        output_path=str(tmp_path / "dpo.parquet"),
        report_path=str(tmp_path / "dpo.json"),
    )
    assert pairs["post_id"].tolist() == ["p00"]
    assert pair_report["pairs"] == {
        "train_comparisons": 1, "summary_filtered_out": 0, "pairs": 1,
        "excluded_domains": {"cnndm": 1},
    }  # fmt: skip
    targets = build_targets(
        scored_path=mixed["scored"],
        posts_path=mixed["posts"],
        base_path=mixed["base"],
        template=TEMPLATE,
        settings=SETTINGS,
        quantiles=[1.0],
        beyond_max_sd=[],
        output_path=str(tmp_path / "targets.json"),
    )
    assert targets[0]["value"] == 2.0 + 0.1 * (N_TRAIN_POSTS - 1)  # not the articles' 9.0
    drawn = draw_eval_prompts(mixed["posts"], 6, seed=1, output_path=str(tmp_path / "e.parquet"))
    assert sorted(drawn["post_id"]) == [f"v{i:02d}" for i in range(6)]  # never cnn2


def test_sft_builds_the_same_rows_from_unscored_completions(world, tmp_path):
    """sft learns from no score: its rows are the same from the scored or the unscored
    completions (the workflow builds them before the reward model exists), `reward` all NaN.
    dpo: tests/test_method_dpo.py."""
    unscored = tmp_path / "unscored.parquet"
    pd.read_parquet(world["scored"]).drop(columns="reward").to_parquet(unscored, index=False)
    assert get_method("sft").learns_from_scores is False
    (tmp_path / "scored").mkdir()
    (tmp_path / "unscored").mkdir()
    scored_rows, scored_report = _build(world, tmp_path / "scored", "sft")
    rows, report = _build({**world, "scored": str(unscored)}, tmp_path / "unscored", "sft")
    assert report == scored_report and len(rows) == len(scored_rows) == N_TRAIN_POSTS
    assert rows["reward"].isna().all() and scored_rows["reward"].isna().all()
    pd.testing.assert_frame_equal(rows, scored_rows)
    with pytest.raises(ValueError, match=r"unscored.parquet lacks column\(s\) \['reward'\]"):
        _build({**world, "scored": str(unscored)}, tmp_path, "scalar")


def test_the_workflow_builds_from_unscored_completions_exactly_the_methods_that_need_no_score():
    import re
    from pathlib import Path

    from rewardcond.methods import available_methods

    common = (Path(__file__).parents[1] / "workflow/rules/common.smk").read_text()
    listed = re.search(r"^UNSCORED_TRAINSET_METHODS = \(([^)]*)\)", common, re.M).group(1)
    names = {name.strip().strip('"') for name in listed.split(",") if name.strip()}
    no_score = {
        name
        for name in available_methods()
        if "<" not in name and not get_method(name).learns_from_scores
    }
    assert names == no_score == {"sft", "dpo"}

"""Replicate seeds and pool percents as model variants (issue 19 §1-2): the config keys, the
pool subsample by post, the seed/percent columns of the tables and the DAG of a dry run."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from rewardcond.config_schema import config_errors, load_schema
from rewardcond.evaluation.summary import variant_columns
from rewardcond.methods import get_method
from rewardcond.trainset import pool_fraction, post_order

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "workflow/schemas/config.schema.yaml")


def demo_config(extra):
    config = {}
    for name in ("config.yaml", "demo.yaml"):
        update_config(config, yaml.safe_load((ROOT / "workflow/config" / name).read_text()))
    update_config(config, extra)
    return config


# --- config ---------------------------------------------------------------------------------------


def test_defaults_are_one_seed_and_the_whole_pool():
    config = demo_config({})
    assert config_errors(config, SCHEMA) == []
    assert config["train"]["seeds"] is None and config["train"]["pool_percents"] == [100]


@pytest.mark.parametrize(
    ("train", "line"),
    [
        ({"seeds": [1, 2, 1]}, "train.seeds: [1, 2, 1] has non-unique elements"),
        ({"seeds": [1234, 7, 1234]}, "train.seeds: [1234, 7, 1234] has non-unique elements"),
        ({"seeds": []}, "train.seeds: [] should be non-empty"),
        ({"pool_percents": [10, 10]}, "train.pool_percents: [10, 10] has non-unique elements"),
        ({"pool_percents": [0]}, "train.pool_percents[0]: 0 is less than the minimum of 1"),
        ({"pool_percents": [101]}, "train.pool_percents[0]: 101 is greater than the maximum"),
        (
            {"rounds": 2, "seeds": [1234, 7]},
            "train.rounds: 2 (online rounds) cannot be combined with train.seeds (replicate "
            "seeds, pool percents) in one run",
        ),
        (
            {"rounds": 3, "seeds": [7], "pool_percents": [50, 100]},
            "train.rounds: 3 (online rounds) cannot be combined with train.seeds and "
            "train.pool_percents (replicate seeds, pool percents) in one run",
        ),
    ],
)
def test_bad_seeds_and_percents_are_errors_naming_the_key(train, line):
    errors = config_errors(demo_config({"train": train}), SCHEMA)
    assert len(errors) == 1 and errors[0].startswith(line), errors


def test_rounds_with_only_the_run_seed_and_the_whole_pool_are_fine():
    config = demo_config({"train": {"rounds": 2, "seeds": [1234], "pool_percents": [100]}})
    assert config_errors(config, SCHEMA) == []


# --- the pool at p percent ----------------------------------------------------------------------

POSTS = [f"p{i:02d}" for i in range(20)]


def write_pool(path, posts, rows_per_post=3):
    rows = [
        {"post_id": post, "completion": f"{post} summary {j}", "reward": float(j)}
        for post in posts
        for j in range(rows_per_post)
    ]
    pd.DataFrame(rows).to_parquet(path)
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("percent", "posts"), [(10, 2), (30, 6), (33, 7), (1, 1), (100, 20)])
def test_a_percent_keeps_that_many_whole_posts(tmp_path, percent, posts):
    pool = write_pool(tmp_path / "scalar.parquet", POSTS)
    kept, report = pool_fraction(
        tmp_path / "scalar.parquet", percent, 1234, tmp_path / "f.parquet", tmp_path / "f.json"
    )
    assert kept["post_id"].nunique() == posts and len(kept) == 3 * posts
    assert report == {
        "trainset": str(tmp_path / "scalar.parquet"),
        "percent": percent,
        "seed": 1234,
        "pool_posts": 20,
        "pool_rows": 60,
        "posts": posts,
        "rows": 3 * posts,
    }
    assert pd.read_parquet(tmp_path / "f.parquet").equals(kept.reset_index(drop=True))
    assert kept.equals(pool[pool["post_id"].isin(kept["post_id"])])  # whole posts, row order kept


def test_smaller_percents_are_nested_and_every_method_gets_the_same_posts(tmp_path):
    write_pool(tmp_path / "scalar.parquet", POSTS)
    write_pool(tmp_path / "text.parquet", POSTS, rows_per_post=2)
    kept = {}
    for method in ("scalar", "text"):
        for percent in (10, 30, 60):
            rows, _ = pool_fraction(
                tmp_path / f"{method}.parquet", percent, 1234, tmp_path / "o.parquet",
                tmp_path / "o.json",
            )  # fmt: skip
            kept[method, percent] = set(rows["post_id"])
    assert kept["scalar", 10] < kept["scalar", 30] < kept["scalar", 60]
    assert all(kept["scalar", p] == kept["text", p] for p in (10, 30, 60))
    other, _ = pool_fraction(
        tmp_path / "scalar.parquet", 30, 99, tmp_path / "o.parquet", tmp_path / "o.json"
    )
    assert set(other["post_id"]) != kept["scalar", 30]  # drawn with the run's seed


def test_post_order_keeps_a_posts_place_in_any_subset():
    order = post_order(POSTS, 1234)
    assert sorted(order) == POSTS and order != POSTS
    subset = POSTS[::3]
    assert post_order(subset, 1234) == [post for post in order if post in subset]


def test_a_percent_outside_1_to_100_is_an_error(tmp_path):
    write_pool(tmp_path / "scalar.parquet", POSTS)
    with pytest.raises(ValueError, match="percent 0 of the pool is not in 1..100"):
        pool_fraction(tmp_path / "scalar.parquet", 0, 1, tmp_path / "o.parquet", tmp_path / "o.j")


# --- names and columns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method"),
    [("scalar-f10-s7", "ScalarMethod"), ("bon4-s2", "BestOfNMethod"), ("sft-s1", "SFTMethod")],
)
def test_a_variant_is_its_method_named_as_the_model(name, method):
    built = get_method(name)
    assert type(built).__name__ == method and built.name == name


def test_variant_columns_follow_method():
    table = pd.DataFrame(
        {"method": ["scalar", "scalar-f30", "scalar-s7", "tokens-f10-s0", "bon4-s2"], "n": 1}
    )
    out = variant_columns(table, run_seed=1234)
    assert list(out.columns) == ["method", "seed", "pool_percent", "n"]
    assert out["seed"].tolist() == [1234, 1234, 7, 0, 2]
    assert out["pool_percent"].tolist() == [100, 30, 100, 10, 100]


# --- the DAG -----------------------------------------------------------------------------------

VARIANTS = {
    "methods": ["scalar", "sft", "dpo", "bon4"],
    "evaluate": {"main_method": "scalar"},
    "train": {"seeds": [7, 1234], "pool_percents": [100, 50]},
}


def dry_run(tmp_path, overlay):
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    command = [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--configfile"]
    command += ["workflow/config/demo.yaml", str(tmp_path / "overlay.yaml")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_seeds_and_percents_are_models_of_the_dag(tmp_path):
    output = dry_run(tmp_path, VARIANTS)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE))
    # sft, dpo and scalar x {100, 50} %, at two seeds; bon4 at two seeds; fractions of one pool.
    assert counts["train"] == "8" and counts["trainset_fraction"] == "1"
    assert counts["trainset"] == "3" and counts["targets"] == "1"
    assert counts["generate_best_of_n"] == "2" and counts["evaluate"] == "10"
    train = re.findall(r"rewardcond\.train --method (\S+) .*?--trainset (\S+) --base (\S+) .*?"
                       r"--seed (\d+)", output)  # fmt: skip
    results = "results/demo"
    assert sorted(train) == sorted(
        [
            ("sft", f"{results}/trainsets/sft.parquet", "data/models/tiny-gpt2", "1234"),
            ("sft-s7", f"{results}/trainsets/sft.parquet", "data/models/tiny-gpt2", "7"),
            ("dpo", f"{results}/trainsets/dpo.parquet", f"{results}/models/sft", "1234"),
            ("dpo-s7", f"{results}/trainsets/dpo.parquet", f"{results}/models/sft-s7", "7"),
            ("scalar", f"{results}/trainsets/scalar.parquet", f"{results}/models/sft", "1234"),
            (
                "scalar-f50",
                f"{results}/trainsets/scalar-f50.parquet",
                f"{results}/models/sft",
                "1234",
            ),
            ("scalar-s7", f"{results}/trainsets/scalar.parquet", f"{results}/models/sft-s7", "7"),
            (
                "scalar-f50-s7",
                f"{results}/trainsets/scalar-f50.parquet",
                f"{results}/models/sft-s7",
                "7",
            ),
        ]
    )
    best_of_n = re.findall(
        r"rule generate_best_of_n:\n    input: \S+, (\S+), .*?\n    output: (\S+)", output
    )
    assert sorted(best_of_n) == [
        (f"{results}/models/sft", f"{results}/generations/bon4.parquet"),
        (f"{results}/models/sft-s7", f"{results}/generations/bon4-s7.parquet"),
    ]

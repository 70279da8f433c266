"""The online rounds (issue 18) in the published tables and the frontier figure."""

import json

import pandas as pd
from evaluation_world import TARGETS, make_kl, make_world

from rewardcond.evaluation.frontier import round_paths
from rewardcond.evaluation.summary import combine
from rewardcond.kl.summary import summarize_kl
from rewardcond.report.render import build_tables
from rewardcond.report.setup import online_costs, training_seconds
from rewardcond.stats import BootstrapSettings

SETTINGS = BootstrapSettings(n_resamples=100, level=0.95, seed=3)


def rounds_world():
    """make_world's `text` renamed `scalar-r2` (round 2 of scalar): (frame, KL summary)."""
    frames, references = make_world()
    kl = pd.concat(make_kl(frames), ignore_index=True)
    kl = summarize_kl(kl, n_resamples=100, level=0.95, seed=3)
    rename = {"method": {"text": "scalar-r2"}}
    frames = [frame.replace(rename) for frame in frames]
    return combine(frames, references, TARGETS), kl.replace(rename)


def write_report(path, method, round_number, samples, tokens):
    report = {"method": method, "round": round_number, "samples": samples}
    path.write_text(json.dumps(report | {"sampled_tokens": tokens}))
    return path


def test_costs_add_up_over_a_models_rounds(tmp_path):
    reports = [
        write_report(tmp_path / "r2.json", "scalar", 2, 100, 1000),
        write_report(tmp_path / "r3.json", "scalar", 3, 90, 800),
        write_report(tmp_path / "t2.json", "text", 2, 7, 70),
    ]
    methods = ["scalar", "scalar-r2", "scalar-r3", "sft", "rloo"]
    costs = online_costs(reports, methods, {"rloo": 3200})
    assert costs["scalar-r3"] == {"samples": 190, "tokens": 1800}
    assert costs["scalar-r2"] == {"samples": 100, "tokens": 1000}
    assert costs["sft"] == {"samples": 0, "tokens": 0}
    assert costs["rloo"]["samples"] == 3200 and pd.isna(costs["rloo"]["tokens"])


def test_a_rounds_training_seconds_include_its_earlier_rounds(tmp_path):
    for rule, job, seconds in [
        ("train", "scalar", 100.0),
        ("online_round", "scalar-r2", 20.0),
        ("train_round", "scalar-r2", 30.0),
        ("online_round", "scalar-r3", 21.0),
        ("train_round", "scalar-r3", 31.0),
        ("train", "sft", 50.0),
    ]:
        (tmp_path / rule).mkdir(exist_ok=True)
        (tmp_path / rule / f"{job}.tsv").write_text(f"s\tmax_rss\n{seconds}\t1\n")
    seconds = training_seconds(tmp_path, ["scalar", "scalar-r2", "scalar-r3", "sft", "text"])
    assert seconds == {"scalar": 100.0, "scalar-r2": 150.0, "scalar-r3": 202.0, "sft": 50.0}
    (tmp_path / "online_round" / "scalar-r2.tsv").unlink()
    assert "scalar-r3" not in training_seconds(tmp_path, ["scalar-r3"])  # a part is missing


def test_winrate_gets_round_and_sample_columns_only_with_rounds(tmp_path):
    frame, kl = rounds_world()
    plain = build_tables(frame, TARGETS, SETTINGS, kl=kl)["winrate"]
    assert "round" not in plain.columns and "online_samples" not in plain.columns
    costs = online_costs(
        [write_report(tmp_path / "r2.json", "scalar", 2, 64, 640)], ["scalar", "scalar-r2", "sft"]
    )
    tables = build_tables(frame, TARGETS, SETTINGS, kl=kl, online_costs=costs)
    winrate = tables["winrate"]
    assert list(winrate.columns) == [*plain.columns, "round", "online_samples",
                                     "online_sampled_tokens"]  # fmt: skip
    assert winrate["method"].tolist() == ["scalar", "scalar-r2", "sft"]
    assert winrate["round"].tolist() == [1, 2, 1]
    assert winrate["online_samples"].tolist() == [0, 64, 0]
    assert winrate["online_sampled_tokens"].tolist() == [0, 640, 0]


def test_the_frontier_path_joins_the_rounds_at_their_top_in_range_target():
    frame, kl = rounds_world()
    summary = build_tables(frame, TARGETS, SETTINGS, kl=kl)["summary"]
    paths = round_paths(summary)
    assert [method for method, _ in paths] == ["scalar"]
    rows = paths[0][1]
    top = max(t.value for t in TARGETS if t.in_range)
    assert rows["method"].tolist() == ["scalar", "scalar-r2"]
    assert rows["round"].tolist() == [1, 2]
    assert rows["target_reward"].tolist() == [top, top]
    assert round_paths(summary[summary["method"] != "scalar-r2"]) == []

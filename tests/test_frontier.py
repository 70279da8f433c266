"""KL from sft in the published tables, the matched-KL comparison, the over-optimisation flags
and the REPORT a referee reads (issue 16 sections 2-4), on the small evaluated world."""

import math

import numpy as np
import pandas as pd
import pytest
from evaluation_world import (
    GOLD_JUDGE,
    KL_OF,
    POST_IDS,
    TARGETS,
    gold_judged,
    make_kl,
    make_world,
    with_rloo_and_bon,
    write_judged,
    write_targets,
)

from rewardcond.artifacts import write_parquet
from rewardcond.evaluation.frontier import attach_kl, closest_kl_target, matched_kl
from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.summary import combine, summarize
from rewardcond.kl.summary import summarize_kl
from rewardcond.report.render import PLOTS, build_tables, publish
from rewardcond.report.setup import models_line, used_base_models
from rewardcond.report.verdict import matched_kl_line, verdict_lines
from rewardcond.stats import BootstrapSettings

SETTINGS = BootstrapSettings(n_resamples=200, level=0.95, seed=3)
GOLD = HeldOutJudge("gold", "gold")


def world(**options):
    frames, references = make_world(**options)
    frames = with_rloo_and_bon(frames)
    kl = summarize_kl(pd.concat(make_kl(frames), ignore_index=True), n_resamples=200, seed=3)
    return frames, references, kl


def tables_for(main_judge="gold", **options):
    """The tables of `world(**options)`, with the gold judge as the main judge (the demo's), or
    with no judge (`main_judge` None)."""
    frames, references, kl = world(**options)
    frame = combine(frames, references, TARGETS)
    if main_judge is not None:
        frame = gold_judged(frame, frames, references)
    judges = GOLD_JUDGE if main_judge else None
    return build_tables(frame, TARGETS, SETTINGS, kl=kl, main_method="scalar", judges=judges,
                        main_judge=main_judge)  # fmt: skip


def test_every_method_and_target_has_its_kl_and_best_of_n_its_bound_too():
    tables = tables_for()
    summary = tables["summary"].set_index(["method", "target_name"])
    assert len(summary) == 9  # 2 conditioned x 3 targets + sft, rloo, bon4
    for key, kl in KL_OF.items():
        assert summary.loc[key, "kl_sft"] == pytest.approx(kl, abs=1e-12), key
    # sft is the reference: exactly 0, and so is its interval.
    assert summary.loc[("sft", "none"), ["kl_sft", "kl_sft_ci_low", "kl_sft_ci_high"]].tolist() == [
        0.0,
        0.0,
        0.0,
    ]
    # Best-of-N: the sample estimate in kl_sft, the analytic log N - (N - 1)/N next to it.
    bon = summary.loc[("bon4", "none")]
    assert bon["kl_sft_analytic"] == pytest.approx(math.log(4) - 0.75)
    assert bon["kl_estimator"] == "best_of_n_beirami"
    assert bon["kl_sft_ci_low"] < 0.6 < bon["kl_sft_ci_high"]
    assert summary.loc[("scalar", "q50"), "kl_estimator"] == "monte_carlo"
    assert summary["kl_sft_analytic"].isna().sum() == 8
    # winrate: at each method's headline target (scalar's and text's is q50).
    winrate = tables["winrate"].set_index("method")
    assert winrate["kl_sft"].round(12).to_dict() == {
        "scalar": 0.4,
        "text": 0.3,
        "sft": 0.0,
        "rloo": 0.45,
        "bon4": 0.6,
    }


def test_a_summary_row_without_kl_is_an_error_naming_it():
    frames, references, kl = world()
    summary = summarize(combine(frames, references, TARGETS), TARGETS, SETTINGS)
    with pytest.raises(
        ValueError, match=r"no KL row for \(method, target\) \[\['rloo', 'none'\]\]"
    ):
        attach_kl(summary, kl[kl["method"] != "rloo"])
    extra = pd.concat([kl, kl[kl["method"] == "sft"].assign(method="dpo")])
    with pytest.raises(ValueError, match=r"KL rows for \[\['dpo', 'none'\]\], which the summary"):
        attach_kl(summary, extra)


def test_scalar_is_compared_with_rloo_at_the_target_of_closest_kl():
    tables = tables_for()
    # rloo's KL is 0.45; scalar's are 0.1 (q05), 0.4 (q50), 1.6 (max+1sd): q50 is closest.
    assert closest_kl_target(tables["summary"], "scalar", 0.45) == "q50"
    assert closest_kl_target(tables["summary"], "scalar", 1.2) == "max+1sd"
    matched = tables["matched_kl"].set_index("metric")
    assert matched.index.tolist() == ["judge_gold_mean", "achieved_reward"]
    assert matched["target_name"].tolist() == ["q50", "q50"]
    assert matched["other_kl_sft"].round(12).tolist() == [0.45, 0.45]
    # scalar @ q50: gold 0.5, reward ~0; rloo: gold ~0.2, reward ~1.0 (sft's + 0.8).
    frames, references, _ = world()
    scalar = frames[0][frames[0]["target_name"] == "q50"].groupby("post_id")
    rloo = frames[3].groupby("post_id")
    expected = (scalar["gold"].mean() - rloo["gold"].mean()).mean()
    assert matched.loc["judge_gold_mean", "difference"] == pytest.approx(expected)
    assert matched.loc["judge_gold_mean", "difference"] == pytest.approx(0.3, abs=0.02)
    assert matched.loc["achieved_reward", "difference"] < -0.5
    assert matched["significant"].tolist() == [True, True]
    assert matched["n_prompts"].tolist() == [len(POST_IDS)] * 2
    line = next(
        line for line in verdict_lines(tables, 0.95, "scalar", GOLD) if "matched KL" in line
    )
    assert line.startswith(
        "**scalar vs rloo at matched KL**: scalar @ q50 (KL 0.40) minus rloo (KL 0.45): gold "
        "score +0.3"
    )
    assert line.endswith("; scalar is ahead on gold score; rloo is ahead on RM.")
    # KLs far apart are said to be unmatched: scalar's closest target is then named as such.
    summary = tables["summary"].copy()
    summary.loc[summary["method"] == "rloo", "kl_sft"] = 5.0
    frames, references, _ = world()
    frame = gold_judged(combine(frames, references, TARGETS), frames, references)
    unmatched = matched_kl(frame, summary, SETTINGS, "scalar", judge=GOLD)
    assert unmatched["target_name"].tolist() == ["max+1sd", "max+1sd"]
    assert matched_kl_line(unmatched, GOLD).endswith(
        "; rloo is ahead on gold score; scalar is ahead on RM. Not matched: no target of scalar "
        "comes within 1.5x of rloo's KL; this is scalar's closest."
    )


def test_overoptimisation_is_flagged_for_every_method_from_its_paired_differences_with_sft():
    tables = tables_for()
    flags = tables["overoptimisation"].set_index(["method", "target_name"])
    assert len(flags) == 8  # every method x condition but sft
    flagged = flags.index[flags["overoptimised"]].tolist()
    # rloo: RM +0.8, gold -0.2; scalar at max+1sd: RM +1.8, gold 0.1 vs 0.4. bon4 gains gold.
    assert flagged == [("scalar", "max+1sd"), ("rloo", "none")]
    rloo = flags.loc[("rloo", "none")]
    assert rloo["rm_difference"] == pytest.approx(0.8)
    assert rloo["judge_gold_mean_difference"] == pytest.approx(-0.2)
    assert rloo["rm_ci_low"] > 0 and rloo["judge_gold_mean_difference_ci_high"] < 0
    lines = verdict_lines(tables, 0.95, "scalar", GOLD)
    starts = [line for line in lines if line.split("**")[1:2] and "over-optimises" in line]
    assert [line.split("**")[1] for line in starts] == [
        "scalar over-optimises",
        "rloo over-optimises",
    ]
    assert starts[0].startswith(
        "**scalar over-optimises** from scalar @ max+1sd (KL 1.60): RM +1.9"
    )
    assert starts[1] == (
        "**rloo over-optimises** from rloo (KL 0.45): RM +0.800 [0.800, 0.800] above sft's, gold "
        "score -0.200 [-0.200, -0.200] below."
    )
    assert (
        "No condition with the RM reward above sft's and gold score below (both intervals): text, "
        in ("\n".join(lines))
    )


def test_verdict_bullets_are_short():
    lines = verdict_lines(tables_for(), 0.95, "scalar", GOLD)
    assert len(lines) >= 10
    assert max(map(len, lines)) <= 320, max(lines, key=len)


def test_setup_lists_only_the_base_models_the_run_used():
    setup = {
        "methods": ["scalar", "sft", "dpo"],
        "base_models": {
            "gpt2": {"source": "hub"},
            "smollm2-135m": {"source": "pypi"},
            "tiny": {"source": "config"},
            "rm-base": {"source": "hub"},
        },  # fmt: skip
        "train": {"base_model": "tiny", "overrides": {"rloo": {"base_model": "gpt2"}}},
        "reward_model": {"kind": "train", "train": {"base": "rm-base"}},
    }
    assert used_base_models(setup) == ["tiny", "rm-base"]
    assert models_line(setup).startswith(
        "base models `tiny` (source=config); `rm-base` (source=hub)"
    )
    setup["reward_model"]["kind"] = "pretrained"
    setup["methods"].append("rloo")
    assert used_base_models(setup) == ["gpt2", "tiny"]


def test_report_shows_kl_a_blank_train_time_and_the_frontier(tmp_path):
    frames, references, _ = world()
    paths, kl_paths = [], []
    for frame, table in zip(frames, make_kl(frames), strict=True):
        paths.append(tmp_path / "evaluated" / f"{frame['method'].iloc[0]}.parquet")
        kl_paths.append(tmp_path / "kl" / f"{frame['method'].iloc[0]}.parquet")
        write_parquet(paths[-1], frame)
        write_parquet(kl_paths[-1], table)
    write_parquet(tmp_path / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    (tmp_path / "benchmarks" / "train").mkdir(parents=True)
    (tmp_path / "benchmarks" / "train" / "scalar.tsv").write_text("s\tmax_rss\n42.4\t300\n")
    tables = publish(
        evaluated=paths,
        references=tmp_path / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=kl_paths,
        results=tmp_path / "results",
        benchmarks=tmp_path / "benchmarks",
        n_resamples=100,
        seed=3,
        main_method="scalar",
        judges=GOLD_JUDGE,
        main_judge="gold",
        **write_judged(tmp_path, frames, references),
    )
    results = tmp_path / "results"
    report = (results / "REPORT.md").read_text()
    wins = report.split("## Win rates against the reference summary")[1].split("\n## ")[0]
    rows = [line for line in wins.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in rows[1:]}  # fmt: skip
    assert header[5:8] == ["KL from sft (nats)", "KL bound", "train s"]
    assert cells["scalar"][7] == "42" and cells["bon4"][7] == "" and cells["sft"][7] == ""
    assert "nan" not in wins
    assert cells["sft"][5] == "0.000 nats [0.000, 0.000]"
    assert cells["bon4"][6] == f"{math.log(4) - 0.75:.3f}"
    assert "Best-of-N: `KL from sft`\nis the estimate of Beirami et al. 2024" in wins
    assert "temperature 1" in wins
    assert "## Reward against KL from sft" in report
    written = pd.read_csv(results / "tables" / "matched_kl.csv")
    pd.testing.assert_frame_equal(written, tables["matched_kl"], check_dtype=False)
    flags = pd.read_csv(results / "tables" / "overoptimisation.csv")
    assert flags["overoptimised"].sum() == 2
    assert "frontier" in PLOTS
    for plot in PLOTS:
        assert (results / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert np.isclose(summary["kl_sft"], summary["kl_sft"]).all()

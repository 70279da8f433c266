"""The held-out side of the verdict, comparisons, matched-KL and over-optimisation tables and
their plots is `evaluate.main_judge` (issue 17 §1), on the small evaluated world with rloo and
best-of-N: a reward_model main judge on a world without gold (the real path's shape), an llm
main judge (verdicts against the reference, no scores), and no judge at all (the proxy only)."""

import numpy as np
import pandas as pd
import pytest
from evaluation_world import (
    TARGETS,
    judged_world,
    make_kl,
    make_world,
    with_rloo_and_bon,
    write_judged,
    write_targets,
)
from test_frontier import tables_for as gold_tables

from rewardcond.artifacts import write_parquet
from rewardcond.evaluation.judged import HeldOutJudge, attach_judges
from rewardcond.evaluation.summary import combine
from rewardcond.kl.summary import summarize_kl
from rewardcond.report.render import build_tables, publish
from rewardcond.report.sections import NO_JUDGE_NOTE, frontier_section
from rewardcond.report.verdict import NO_JUDGE, verdict_lines
from rewardcond.stats import BootstrapSettings

SETTINGS = BootstrapSettings(n_resamples=200, level=0.95, seed=3)
DEBERTA = HeldOutJudge("deberta", "reward_model")
GPT = HeldOutJudge("gpt", "llm")
#: gpt's verdict against the reference per method x condition (NaN, a malformed answer, at
#: scalar @ q50, p0, sample 1).
VERDICTS = {("scalar", "q05"): 1.0, ("scalar", "q50"): 0.5, ("scalar", "max+1sd"): 0.0,
            ("text", "q05"): 0.5, ("text", "q50"): 0.5, ("text", "max+1sd"): 0.5,
            ("sft", "none"): 0.5, ("rloo", "none"): 0.0, ("bon4", "none"): 1.0}  # fmt: skip


def real_world():
    """The world with rloo and bon4 as the real path has it: no gold (NaN), and a DeBERTa-like
    judge scoring every summary 10 x the world's gold (references: 5.0), gpt as `VERDICTS`.
    Returns (frames, references, judged parts, judged references, gold frames)."""
    gold_frames, gold_references = make_world()
    gold_frames = with_rloo_and_bon(gold_frames)
    parts, judged_references = judged_world(gold_frames, gold_references)
    for part, frame in zip(parts, gold_frames, strict=True):
        part["judge_deberta"] = 10 * frame["gold"]
        keys = list(zip(frame["method"], frame["target_name"], strict=True))
        part["judge_gpt"] = [VERDICTS[key] for key in keys]
        malformed = (part["method"] == "scalar") & (part["target_name"] == "q50")
        part.loc[malformed & (part["post_id"] == "p0") & (part["sample"] == 1), "judge_gpt"] = (
            np.nan
        )
    judged_references["judge_deberta"] = 10 * gold_references["gold"]
    parts = [part.drop(columns="judge_gold") for part in parts]  # no gold judge on real data
    judged_references = judged_references.drop(columns="judge_gold")
    frames = [frame.assign(gold=np.nan) for frame in gold_frames]
    references = gold_references.assign(gold=np.nan)
    return frames, references, parts, judged_references, gold_frames


def judged_tables(main_judge, judges=None):
    frames, references, parts, judged_references, _ = real_world()
    judges = judges or {"deberta": "reward_model", "gpt": "llm"}
    frame = attach_judges(combine(frames, references, TARGETS), parts, judged_references, judges)
    kl = summarize_kl(pd.concat(make_kl(frames), ignore_index=True), n_resamples=200, seed=3)
    return build_tables(frame, TARGETS, SETTINGS, kl=kl, main_method="scalar", judges=judges,
                        main_judge=main_judge)  # fmt: skip


def per_prompt(frames, method, target, column):
    frame = next(f for f in frames if f["method"].iloc[0] == method)
    return frame[frame["target_name"] == target].groupby("post_id")[column].mean()


def test_a_reward_model_main_judge_on_a_world_without_gold():
    tables = judged_tables("deberta")
    _, _, _, _, gold_frames = real_world()
    assert tables["summary"]["gold_reward_mean"].isna().all()  # the real path: no gold
    # Over-optimisation against sft on the judge's score: rloo's gold is sft's - 0.2, so its
    # DeBERTa score (10 x gold) is sft's - 2.0 on every prompt.
    flags = tables["overoptimisation"].set_index(["method", "target_name"])
    assert list(flags.columns[4:8]) == [
        "rm_ci_high",
        "judge_deberta_mean_difference",
        "judge_deberta_mean_difference_ci_low",
        "judge_deberta_mean_difference_ci_high",
    ]
    assert not any("gold" in column for column in flags.columns)
    rloo = flags.loc[("rloo", "none")]
    assert rloo[["judge_deberta_mean_difference", "judge_deberta_mean_difference_ci_low",
                 "judge_deberta_mean_difference_ci_high"]].tolist() == pytest.approx(
        [-2.0] * 3, abs=1e-12
    )  # fmt: skip
    assert flags.index[flags["overoptimised"]].tolist() == [("scalar", "max+1sd"), ("rloo", "none")]
    expected = (
        10
        * (
            per_prompt(gold_frames, "scalar", "max+1sd", "gold")
            - per_prompt(gold_frames, "sft", "none", "gold")
        ).mean()
    )
    assert flags.loc[("scalar", "max+1sd"), "judge_deberta_mean_difference"] == pytest.approx(
        expected, abs=1e-12
    )
    # Matched KL: scalar @ q50 against rloo on the judge's score and on the RM.
    matched = tables["matched_kl"].set_index("metric")
    assert matched.index.tolist() == ["judge_deberta_mean", "achieved_reward"]
    expected = (
        10
        * (
            per_prompt(gold_frames, "scalar", "q50", "gold")
            - per_prompt(gold_frames, "rloo", "none", "gold")
        ).mean()
    )
    assert matched.loc["judge_deberta_mean", "difference"] == pytest.approx(expected, abs=1e-12)
    assert matched.loc["judge_deberta_mean", "method_value"] == pytest.approx(
        tables["summary"]
        .set_index(["method", "target_name"])
        .loc[("scalar", "q50"), "judge_deberta_mean"]
    )
    # comparisons: the judge's score and win rate, no gold and no llm score.
    metrics = list(dict.fromkeys(tables["comparisons"]["metric"]))
    assert metrics == [
        "achieved_reward",
        "judge_deberta_mean",
        "winrate_rm",
        "judge_deberta_winrate",
        "spearman_pooled",
    ]
    assert np.isfinite(tables["comparisons"][["difference", "ci_low", "ci_high"]]).all().all()
    # The judge's Spearman is the gold world's Spearman on gold (10 x gold has its ranks).
    gold = gold_tables().get("correlation").set_index("method")
    correlation = tables["correlation"].set_index("method")
    for suffix in ("pooled", "pooled_ci_low", "pooled_ci_high", "per_prompt_mean"):
        assert correlation[f"spearman_judge_deberta_{suffix}"].tolist() == pytest.approx(
            gold[f"spearman_gold_{suffix}"].tolist(), abs=1e-12
        ), suffix
    lines = verdict_lines(tables, 0.95, "scalar", DEBERTA)
    assert lines[0].startswith("Held-out judge: **deberta** (kind reward_model, ")
    assert not any("gold" in line.lower() for line in lines)
    assert next(line for line in lines if line.startswith("Highest deberta")).startswith(
        "Highest deberta score (held-out judge): **scalar @ q50** with 5.0"
    )
    assert (
        "**rloo over-optimises** from rloo (KL 0.45): RM +0.800 [0.800, 0.800] above sft's, "
        "deberta score -2.000 [-2.000, -2.000] below."
    ) in lines
    assert any(line.startswith("**Over-optimisation in scalar**") and "deberta score falls"
               in line for line in lines)  # fmt: skip
    matched_line = next(line for line in lines if "matched KL" in line)
    assert "minus rloo (KL 0.45): deberta score +" in matched_line
    assert matched_line.endswith("scalar is ahead on deberta score; rloo is ahead on RM.")


def test_an_llm_main_judge_is_compared_on_its_win_rate_against_the_reference():
    tables = judged_tables("gpt")
    summary = tables["summary"].set_index(["method", "target_name"])
    assert summary.loc[("scalar", "q50"), "judge_gpt_winrate"] == 0.5  # the NaN left out
    flags = tables["overoptimisation"].set_index(["method", "target_name"])
    columns = ["judge_gpt_winrate_difference", "judge_gpt_winrate_difference_ci_low",
               "judge_gpt_winrate_difference_ci_high"]  # fmt: skip
    assert list(flags.columns[5:8]) == columns
    # rloo loses every verdict (0), sft ties every one (0.5): -0.5 on every prompt.
    assert flags.loc[("rloo", "none"), columns].tolist() == [-0.5, -0.5, -0.5]
    assert flags.loc[("bon4", "none"), columns].tolist() == [0.5, 0.5, 0.5]
    assert flags.loc[("scalar", "q50"), columns].tolist() == [0.0, 0.0, 0.0]
    assert flags.index[flags["overoptimised"]].tolist() == [("scalar", "max+1sd"), ("rloo", "none")]
    matched = tables["matched_kl"].set_index("metric")
    assert matched.index.tolist() == ["judge_gpt_winrate", "achieved_reward"]
    assert matched.loc["judge_gpt_winrate", ["method_value", "other_value", "difference",
                                             "ci_low", "ci_high"]].tolist() == [
        0.5, 0.0, 0.5, 0.5, 0.5
    ]  # fmt: skip
    metrics = set(tables["comparisons"]["metric"])
    assert "judge_gpt_winrate" in metrics and not any("mean" in m for m in metrics - {
        "achieved_reward"})  # fmt: skip
    lines = verdict_lines(tables, 0.95, "scalar", GPT)
    assert "win rate against the reference (an llm judge gives verdicts" in lines[0]
    assert (
        "**rloo over-optimises** from rloo (KL 0.45): RM +0.800 [0.800, 0.800] above sft's, gpt "
        "win rate vs the reference -0.500 [-0.500, -0.500] below."
    ) in lines
    assert any(line.startswith("Highest win rate against the reference under gpt: **bon4** with "
                               "1.000") for line in lines)  # fmt: skip
    matched_line = next(line for line in lines if "matched KL" in line)
    assert "(KL 0.45): gpt win rate vs the reference +0.500 [0.500, 0.500], RM -" in matched_line
    section = frontier_section(tables, GPT)
    header = next(line for line in section.splitlines() if line.startswith("| method  "))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "method", "KL from sft", "RM - sft [CI]", "gpt win rate vs the reference - sft [CI]"
    ]  # fmt: skip
    row = next(line for line in section.splitlines() if line.startswith("| rloo "))
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "rloo", "0.450", "+0.800 [0.800, 0.800]", "-0.500 [-0.500, -0.500]"
    ]  # fmt: skip


def test_without_a_judge_the_outputs_say_the_proxy_only():
    tables = gold_tables(main_judge=None)  # the world has gold, but no judge is configured
    flags = tables["overoptimisation"]
    assert list(flags.columns) == [
        "method", "target_name", "target_reward", "kl_sft", "rm_difference", "rm_ci_low",
        "rm_ci_high", "n_prompts",
    ]  # fmt: skip
    assert len(flags) == 8 and np.isfinite(flags["rm_difference"]).all()
    assert tables["matched_kl"]["metric"].tolist() == ["achieved_reward"]
    assert set(tables["comparisons"]["metric"]) == {"achieved_reward", "winrate_rm",
                                                    "spearman_pooled"}  # fmt: skip
    assert not any(c.startswith("spearman_judge") for c in tables["correlation"].columns)
    lines = verdict_lines(tables, 0.95, "scalar")
    assert lines[0] == NO_JUDGE
    assert not any("over-optimis" in line or "gold" in line for line in lines[1:])
    matched_line = next(line for line in lines if "matched KL" in line)
    assert "minus rloo (KL 0.45): RM -" in matched_line
    assert matched_line.endswith("; rloo is ahead on RM.")
    section = frontier_section(tables, None)
    assert section.rstrip().endswith(NO_JUDGE_NOTE)
    assert "Over-optimised conditions" not in section and "nan" not in section


def test_a_main_judge_that_names_no_judge_is_an_error_naming_the_key():
    with pytest.raises(
        ValueError,
        match=r"evaluate.main_judge: 'gpt4' is not the name of a judge; expected one of "
        r"\['deberta', 'gpt'\] \(evaluate.judges\)",
    ):
        judged_tables("gpt4")
    with pytest.raises(ValueError, match=r"evaluate.main_judge: None is not the name of a judge"):
        judged_tables(None)


def test_publish_of_the_real_path_names_the_judge_in_every_output(tmp_path):
    frames, references, parts, judged_references, _ = real_world()
    paths = []
    for frame in frames:
        paths.append(tmp_path / "evaluated" / f"{frame['method'].iloc[0]}.parquet")
        write_parquet(paths[-1], frame)
    write_parquet(tmp_path / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    kl_paths = []
    for table in make_kl(frames):
        kl_paths.append(tmp_path / "kl" / f"{table['method'].iloc[0]}.parquet")
        write_parquet(kl_paths[-1], table)
    results = tmp_path / "results"
    judges = {"deberta": "reward_model", "gpt": "llm"}
    publish(
        evaluated=paths,
        references=tmp_path / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=kl_paths,
        results=results,
        benchmarks=tmp_path / "benchmarks",
        n_resamples=100,
        seed=3,
        main_method="scalar",
        judges=judges,
        main_judge="deberta",
        **write_judged(tmp_path, frames, references, (parts, judged_references)),
    )
    report = (results / "REPORT.md").read_text()
    assert "gold" not in report.lower()
    verdict = report.split("## Verdict\n")[1].split("\n## ")[0]
    assert "Held-out judge: **deberta**" in verdict and "nan" not in verdict
    assert "deberta score - sft [CI]" in report
    comparisons = pd.read_csv(results / "tables" / "comparisons.csv")
    assert "judge_deberta_mean" in set(comparisons["metric"])
    assert np.isfinite(comparisons[["difference", "ci_low", "ci_high"]]).all().all()
    flags = pd.read_csv(results / "tables" / "overoptimisation.csv")
    assert flags["overoptimised"].sum() == 2
    assert "held-out judge deberta" in (results / "tables" / "overoptimisation.md").read_text()
    for plot in ("overoptimisation", "frontier"):
        assert (results / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"

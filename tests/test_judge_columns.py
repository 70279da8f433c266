"""The judges' columns of summary.csv / winrate.csv and the REPORT's "Judges" section
(issue 17 §1), on the small evaluated world of evaluation_world."""

import pandas as pd
import pytest
from evaluation_world import JUDGES, TARGETS, judged_world, make_world, write_targets
from test_report import SETTINGS, kl_summary, write_kl

from rewardcond.artifacts import write_parquet
from rewardcond.evaluation.judged import attach_judges
from rewardcond.evaluation.summary import combine
from rewardcond.report.render import build_tables, publish

#: deberta scores a row (post index + sample); the references score 5.0. Per method x target
#: (8 prompts x 2 samples): sample 0 wins at p6, p7 and ties at p5; sample 1 wins at p5, p6, p7
#: and ties at p4: (5 + 2 x 0.5) / 16 = 0.375; mean score 3.5 + 0.5 = 4.0.
DEBERTA_WINRATE, DEBERTA_MEAN = 0.375, 4.0
#: gpt's verdict: 1 for sample 0, 0.5 for sample 1, NaN (malformed) at (p0, sample 1).
GPT_WINRATE = (8 * 1.0 + 7 * 0.5) / 15


def judge_tables():
    frames, references = make_world()
    judged, judged_references = judged_world(frames, references)
    frame = attach_judges(combine(frames, references, TARGETS), judged, judged_references, JUDGES)
    return build_tables(
        frame,
        TARGETS,
        SETTINGS,
        kl=kl_summary(frames),
        main_method="scalar",
        judges=JUDGES,
        main_judge="gold",
    )


def test_the_gold_judge_gives_the_gold_columns_numbers():
    summary = judge_tables()["summary"]
    pairs = {
        "judge_gold_mean": "gold_reward_mean",
        "judge_gold_ci_low": "gold_reward_ci_low",
        "judge_gold_ci_high": "gold_reward_ci_high",
        "judge_gold_winrate": "winrate_gold",
        "judge_gold_winrate_ci_low": "winrate_gold_ci_low",
        "judge_gold_winrate_ci_high": "winrate_gold_ci_high",
    }
    for judge, gold in pairs.items():
        assert summary[judge].tolist() == summary[gold].tolist(), judge
    # As test_report's: scalar wins on gold at q05 (gold 0.7 vs 0.5), loses at max+1sd; sft loses.
    assert summary["judge_gold_winrate"].iloc[[0, 2, 6]].tolist() == [1.0, 0.0, 0.0]


def test_score_and_llm_judges_get_their_means_and_win_rates():
    tables = judge_tables()
    summary = tables["summary"]
    assert len(summary) == 7
    assert summary["judge_deberta_mean"].tolist() == [DEBERTA_MEAN] * 7
    assert summary["judge_deberta_winrate"].tolist() == [DEBERTA_WINRATE] * 7
    assert summary["judge_gpt_winrate"].tolist() == pytest.approx([GPT_WINRATE] * 7, abs=1e-12)
    assert "judge_gpt_mean" not in summary.columns  # a verdict has no score of its own
    for column in ("judge_deberta_mean", "judge_deberta_winrate", "judge_gpt_winrate"):
        assert (summary[f"{column.removesuffix('_mean')}_ci_low"] <= summary[column]).all()
        assert (summary[column] <= summary[f"{column.removesuffix('_mean')}_ci_high"]).all()
    winrate = tables["winrate"]
    assert winrate[["method", "target_name"]].values.tolist() == [
        ["scalar", "q50"],
        ["text", "q50"],
        ["sft", "none"],
    ]
    judge_columns = [column for column in winrate.columns if column.startswith("judge_")]
    assert judge_columns == [
        f"judge_{name}_{suffix}"
        for name, suffixes in (
            ("gold", ("mean", "ci_low", "ci_high")),
            ("deberta", ("mean", "ci_low", "ci_high")),
            ("gpt", ()),
        )
        for suffix in (*suffixes, "winrate", "winrate_ci_low", "winrate_ci_high")
    ]
    assert winrate["judge_deberta_winrate"].tolist() == [DEBERTA_WINRATE] * 3


def test_a_missing_judged_row_is_an_error_naming_method_and_target():
    frames, references = make_world()
    judged, judged_references = judged_world(frames, references)
    scalar = judged[0]
    judged[0] = scalar[~((scalar["target_name"] == "q50") & (scalar["post_id"] == "p3"))]
    frame = combine(frames, references, TARGETS)
    with pytest.raises(ValueError, match=r"no judged row for method 'scalar' target 'q50' \(2 "):
        attach_judges(frame, judged, judged_references, JUDGES)
    judged, judged_references = judged_world(frames, references)
    with pytest.raises(ValueError, match=r"no judged reference for post_id \['p7'\]"):
        attach_judges(frame, judged, judged_references.iloc[:-1], JUDGES)
    with pytest.raises(ValueError, match="judge_gpt"):
        attach_judges(frame, [part.drop(columns="judge_gpt") for part in judged],
                      judged_references, JUDGES)  # fmt: skip


def test_publish_reads_the_judged_files_and_reports_the_judges(tmp_path):
    frames, references = make_world()
    judged, judged_references = judged_world(frames, references)
    paths, judged_paths = [], []
    for frame, part in zip(frames, judged, strict=True):
        method = frame["method"].iloc[0]
        paths.append(tmp_path / "evaluated" / f"{method}.parquet")
        judged_paths.append(tmp_path / "judged" / f"{method}.parquet")
        write_parquet(paths[-1], frame)
        write_parquet(judged_paths[-1], part)
    write_parquet(tmp_path / "evaluated" / "references.parquet", references)
    write_parquet(tmp_path / "judged" / "references.parquet", judged_references)
    write_targets(tmp_path / "targets.json")
    pd.DataFrame(
        {
            "judge": ["proxy", "gold", "deberta", "gpt"],
            "kind": ["proxy", "gold", "reward_model", "llm"],
            "model": ["rm", "gold.jsonl", "org/deberta@abc", "gpt-x"],
            "split": "valid2",
            "n": 40,
            "n_unjudged": 0,
            "agreement": [0.6, 0.9, 0.7, 0.65],
            "ci_low": [0.5, 0.8, 0.6, 0.55],
            "ci_high": [0.7, 1.0, 0.8, 0.75],
            "source": "",
        }
    ).to_csv(tmp_path / "judges.csv", index=False)
    results = tmp_path / "results"
    publish(
        evaluated=paths,
        references=tmp_path / "evaluated" / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=write_kl(tmp_path, frames),
        results=results,
        benchmarks=tmp_path / "benchmarks",
        n_resamples=100,
        seed=3,
        main_method="scalar",
        judges=JUDGES,
        main_judge="gold",
        judged=judged_paths,
        judged_references=tmp_path / "judged" / "references.parquet",
        judges_table=tmp_path / "judges.csv",
    )
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert summary["judge_deberta_winrate"].tolist() == [DEBERTA_WINRATE] * 7
    winrate = pd.read_csv(results / "tables" / "winrate.csv")
    assert winrate["judge_deberta_mean"].tolist() == [DEBERTA_MEAN] * 3
    report = (results / "REPORT.md").read_text()
    section = report[report.index("## Judges") : report.index("## Calibration")]
    assert "| deberta | reward_model | org/deberta@abc |  40 | 0.700 [0.600, 0.800]" in section
    assert "| proxy   | proxy        | rm              |  40 | 0.600 [0.500, 0.700]" in section
    header = next(line for line in section.splitlines() if line.startswith("| method"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "method", "target_name", "win rate (gold) [CI]", "win rate (deberta) [CI]",
        "win rate (gpt) [CI]",
    ]  # fmt: skip
    rows = [line for line in section.splitlines() if line.startswith(("| scalar", "| text"))]
    assert [line.split("|")[4].strip()[:5] for line in rows] == ["0.375", "0.375"]
    assert [line.split("|")[5].strip()[:5] for line in rows] == [f"{GPT_WINRATE:.3f}"] * 2
    # Without judges the REPORT has no such section and publish needs no judged files.
    bare = publish(
        evaluated=paths,
        references=tmp_path / "evaluated" / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=write_kl(tmp_path, frames),
        results=tmp_path / "bare",
        benchmarks=tmp_path / "benchmarks",
        n_resamples=100,
        seed=3,
    )
    assert not any(column.startswith("judge_") for column in bare["summary"].columns)
    assert "## Judges" not in (tmp_path / "bare" / "REPORT.md").read_text()
    with pytest.raises(ValueError, match=r"evaluate.judges \['gold'\] needs the judged files"):
        publish(
            evaluated=paths,
            references=tmp_path / "evaluated" / "references.parquet",
            targets=tmp_path / "targets.json",
            kl=write_kl(tmp_path, frames),
            results=tmp_path / "none",
            judges={"gold": "gold"},
            main_judge="gold",
        )

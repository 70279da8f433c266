"""Tables, verdict and REPORT of rewardcond.report on the small evaluated world."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_world import (
    GOLD_JUDGE,
    POST_IDS,
    SAMPLES,
    TARGETS,
    gold_judged,
    make_kl,
    make_world,
    write_judged,
    write_targets,
)

from rewardcond.artifacts import write_parquet
from rewardcond.evaluation.judged import HeldOutJudge
from rewardcond.evaluation.summary import best_targets, combine
from rewardcond.kl.summary import summarize_kl
from rewardcond.report.render import PLOTS, TABLES, build_tables, publish
from rewardcond.report.replicates import seed_outputs
from rewardcond.report.verdict import NO_JUDGE, verdict_lines
from rewardcond.stats import MIN_PROMPTS, BootstrapSettings, spearman

SETTINGS = BootstrapSettings(n_resamples=200, level=0.95, seed=3)
#: The demo's held-out judge: the world's gold function (`evaluate.main_judge: gold`).
GOLD = HeldOutJudge("gold", "gold")
SUMMARY_COLUMNS = [
    "method",
    "seed",
    "pool_percent",
    "target_name",
    "target_reward",
    "in_range",
    "n",
    "n_prompts",
    "n_empty",
    "achieved_reward_mean",
    "achieved_reward_ci_low",
    "achieved_reward_ci_high",
    "gold_reward_mean",
    "gold_reward_ci_low",
    "gold_reward_ci_high",
    "rouge1",
    "rouge2",
    "rougeL",
    "length_mean",
    "eos_rate",
    "distinct1",
    "distinct2",
    "winrate_rm",
    "winrate_rm_ci_low",
    "winrate_rm_ci_high",
    "winrate_gold",
    "winrate_gold_ci_low",
    "winrate_gold_ci_high",
    "generated_tokens_per_prompt",
    "n_candidates",
    "kl_sft",
    "kl_sft_ci_low",
    "kl_sft_ci_high",
    "kl_sft_analytic",
    "kl_estimator",
]
CORRELATION_COLUMNS = [
    "method",
    "seed",
    "pool_percent",
    "n",
    "n_prompts",
    "spearman_pooled",
    "spearman_pooled_ci_low",
    "spearman_pooled_ci_high",
    "spearman_per_prompt_mean",
    "spearman_per_prompt_n",
    "spearman_note",
    "spearman_gold_pooled",
    "spearman_gold_pooled_ci_low",
    "spearman_gold_pooled_ci_high",
    "spearman_gold_per_prompt_mean",
    "spearman_gold_per_prompt_n",
    "spearman_gold_note",
    "calibration_mae",
]
WINRATE_COLUMNS = [
    "method",
    "seed",
    "pool_percent",
    "target_name",
    "target_reward",
    "n",
    "n_prompts",
    "achieved_reward_mean",
    "gold_reward_mean",
    "gold_reward_ci_low",
    "gold_reward_ci_high",
    "winrate_rm",
    "winrate_rm_ci_low",
    "winrate_rm_ci_high",
    "winrate_gold",
    "winrate_gold_ci_low",
    "winrate_gold_ci_high",
    "kl_sft",
    "kl_sft_ci_low",
    "kl_sft_ci_high",
    "kl_sft_analytic",
    "kl_estimator",
    "train_seconds",
    "generated_tokens_per_prompt",
    "n_candidates",
]


def kl_summary(frames, settings=SETTINGS):
    """`summarize_kl` of `make_kl`'s rows for these evaluated frames."""
    return summarize_kl(
        pd.concat(make_kl(frames), ignore_index=True),
        n_resamples=settings.n_resamples,
        level=settings.level,
        seed=settings.seed,
    )


def write_kl(directory, frames):
    """`make_kl`'s rows as the `kl` rules' files under `directory`; returns their paths."""
    paths = []
    for table in make_kl(frames):
        paths.append(directory / "kl" / f"{table['method'].iloc[0]}.parquet")
        write_parquet(paths[-1], table)
    return paths


def tables_for(main_method="scalar", main_judge="gold", **world):
    """The tables of `make_world(**world)`; with `main_judge` "gold" the gold judge attached
    (as the demo has it), with None no judge."""
    frames, references = make_world(**world)
    frame = combine(frames, references, TARGETS)
    if main_judge is not None:
        frame = gold_judged(frame, frames, references)
    return build_tables(
        frame,
        TARGETS,
        SETTINGS,
        kl=kl_summary(frames),
        train_seconds={"scalar": 60.0},
        main_method=main_method,
        judges=GOLD_JUDGE if main_judge else None,
        main_judge=main_judge,
    )


def test_tables_have_the_contracted_columns_and_rows():
    tables = tables_for(main_judge=None)
    summary, correlation, winrate = tables["summary"], tables["correlation"], tables["winrate"]
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert list(correlation.columns) == CORRELATION_COLUMNS
    assert list(winrate.columns) == WINRATE_COLUMNS
    # 2 conditioned methods x 3 targets + 1 baseline; correlation: conditioned only.
    assert summary[["method", "target_name"]].values.tolist() == [
        ["scalar", "q05"],
        ["scalar", "q50"],
        ["scalar", "max+1sd"],
        ["text", "q05"],
        ["text", "q50"],
        ["text", "max+1sd"],
        ["sft", "none"],
    ]
    assert summary["n"].tolist() == [len(POST_IDS) * SAMPLES] * 7
    assert summary["eos_rate"].tolist() == [0.5] * 7
    assert summary["length_mean"].tolist() == [6.5] * 7
    assert correlation["method"].tolist() == ["scalar", "text"]
    # Only the two in-range targets enter the correlation.
    assert correlation["n"].tolist() == [2 * len(POST_IDS) * SAMPLES] * 2
    assert winrate["method"].tolist() == ["scalar", "text", "sft"]
    assert winrate["train_seconds"].tolist()[0] == 60.0
    assert winrate["train_seconds"].isna().tolist() == [False, True, True]
    # Scalar's reward is the target plus small noise: near-perfect rank correlation.
    assert correlation.loc[0, "spearman_pooled"] > 0.8
    assert correlation.loc[0, "spearman_gold_pooled"] < -0.8
    for _, row in summary.iterrows():
        assert row["achieved_reward_ci_low"] <= row["achieved_reward_mean"]
        assert row["achieved_reward_mean"] <= row["achieved_reward_ci_high"]


def test_empty_summaries_are_counted_and_left_out_of_the_reward_mean():
    frames, references = make_world()
    scalar = frames[0]
    empty = (scalar["target_name"] == "q50") & (scalar["post_id"] == "p0")
    scalar.loc[empty, "text"] = ""
    scalar.loc[empty, "reward"] = np.nan
    tables = build_tables(combine(frames, references, TARGETS), TARGETS, SETTINGS)
    summary = tables["summary"].set_index(["method", "target_name"])
    assert summary["n_empty"].tolist() == [0, 2, 0, 0, 0, 0, 0]
    expected = scalar.loc[(scalar["target_name"] == "q50") & ~empty, "reward"].mean()
    assert summary.loc[("scalar", "q50"), "achieved_reward_mean"] == pytest.approx(expected)
    assert summary.loc[("scalar", "q50"), "n"] == 16
    assert np.isfinite(tables["correlation"]["spearman_pooled"]).all()


def test_best_target_is_the_in_range_one_with_highest_reward():
    summary = tables_for()["summary"]
    # scalar's reward is highest at max+1sd, but that target lies outside the training range.
    assert best_targets(summary) == {"scalar": "q50", "text": "q50", "sft": "none"}


def test_win_rates_against_the_reference():
    summary = tables_for()["summary"].set_index(["method", "target_name"])
    # References score 0.0; scalar at q05 has reward -1 + noise (always loses), at q50 ~ coin flip.
    assert summary.loc[("scalar", "q05"), "winrate_rm"] == 0.0
    assert summary.loc[("scalar", "max+1sd"), "winrate_rm"] == 1.0
    # Gold: references have 0.5; scalar at q05 has gold 0.7 (always wins), at max+1sd 0.1.
    assert summary.loc[("scalar", "q05"), "winrate_gold"] == 1.0
    assert summary.loc[("scalar", "max+1sd"), "winrate_gold"] == 0.0
    assert summary.loc[("sft", "none"), "winrate_gold"] == 0.0


def test_verdict_follows_the_numbers():
    lines = verdict_lines(tables_for(text_gold=0.4), 0.95, "scalar", GOLD)
    assert lines[0].startswith("Held-out judge: **gold** (kind gold, `evaluate.main_judge`)")
    gold_line = next(line for line in lines if line.startswith("Highest gold score"))
    assert gold_line.startswith("Highest gold score (held-out judge): **scalar @ q50** with 0.50")
    # Short: the significant differences with their intervals, the ties by name only.
    assert re.fullmatch(
        r"Highest gold score \(held-out judge\): \*\*scalar @ q50\*\* with 0\.507 "
        r"\[95% CI 0\.\d+, 0\.\d+\]; "
        r"beats text @ q50 \(\+0\.10\d \[0\.\d+, 0\.\d+\]\), "
        r"sft \(\+0\.1\d\d \[0\.\d+, 0\.\d+\]\)\.",
        gold_line,
    )
    changed = verdict_lines(tables_for(text_gold=0.8), 0.95, "scalar", GOLD)
    gold_line = next(line for line in changed if line.startswith("Highest gold score"))
    assert gold_line.startswith("Highest gold score (held-out judge): **text @ q50** with 0.80")
    assert re.search(r"beats scalar @ q50 \(\+0\.(29|30|31)\d \[0\.\d+, 0\.\d+\]\)", gold_line)
    main = next(line for line in changed if line.startswith("scalar on gold score"))
    assert "loses to text" in main and "beats sft" in main
    calibration = next(line for line in lines if line.startswith("Best calibration"))
    assert calibration.startswith("Best calibration (pooled Spearman(target, achieved), in-range")
    assert "**scalar** with 0.8" in calibration
    assert "beats text (+0." in calibration


@pytest.mark.parametrize(
    ("slope", "expected"),
    [(-0.2, True), (0.0, False), (0.2, False)],
    ids=["falls", "flat", "rises"],
)
def test_overoptimisation_sentence_only_when_proxy_rises_and_gold_falls(slope, expected):
    lines = verdict_lines(tables_for(scalar_gold_slope=slope), 0.95, "scalar", GOLD)
    flagged = [line for line in lines if "this is over-optimisation" in line]
    assert len(flagged) == int(expected)
    if expected:
        assert flagged[0].startswith("**Over-optimisation in scalar**")
    checked = next(line for line in lines if line.startswith("Proxy and gold do not move"))
    assert checked.endswith(": text.") if expected else checked.endswith(": scalar, text.")


def test_world_without_gold_says_so_once_and_names_no_gold_metric():
    lines = verdict_lines(tables_for(with_gold=False, main_judge=None), 0.95, "scalar")
    assert lines[0] == NO_JUDGE
    assert not any("gold" in line.lower() for line in lines)
    assert not any("over-optimisation" in line.lower() for line in lines[1:])
    assert any(line.startswith("Highest win rate against the reference under the reward model")
               for line in lines)  # fmt: skip


def publish_world(tmp_path, *, with_gold=True, setup=None):
    """Publish the small evaluated world under tmp_path/results; returns the tables."""
    frames, references = make_world(with_gold=with_gold)
    paths = []
    for frame in frames:
        path = tmp_path / "evaluated" / f"{frame['method'].iloc[0]}.parquet"
        write_parquet(path, frame)
        paths.append(path)
    write_parquet(tmp_path / "evaluated" / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    return publish(
        evaluated=paths,
        references=tmp_path / "evaluated" / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=write_kl(tmp_path, frames),
        results=tmp_path / "results",
        benchmarks=tmp_path / "benchmarks",
        setup=setup,
        n_resamples=100,
        seed=3,
        main_method="scalar",
    )


def test_report_of_a_run_without_gold_mentions_no_gold_and_names_the_pretrained_rm(tmp_path):
    # Real data: no gold function. The tables keep their (empty) gold columns; the REPORT
    # neither shows empty gold columns nor claims a gold figure, and names the hub RM it used.
    setup = {
        "run": "real",
        "data": {"source": "openai"},
        "base_models": {"gpt2": {"source": "hub", "hub_id": "openai-community/gpt2"}},
        "reward_model": {
            "kind": "pretrained",
            "pretrained": {"hub_id": "org/rm", "revision": "a" * 40},
            "train": {"base": "gpt2"},
        },
    }
    publish_world(tmp_path, with_gold=False, setup=setup)
    results = tmp_path / "results"
    report = (results / "REPORT.md").read_text()
    assert [line for line in report.splitlines() if "gold" in line.lower()] == []
    assert f"- {NO_JUDGE}\n" in report
    assert f"reward model: pretrained `org/rm` at revision {'a' * 40}." in report
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary[["gold_reward_mean", "winrate_gold"]].isna().all().all()


def test_report_names_the_trained_reward_model_when_the_run_trains_one(tmp_path):
    setup = {"run": "x", "base_models": {"gpt2": {"source": "hub"}},
             "reward_model": {"kind": "train", "pretrained": {"hub_id": "org/rm"}}}  # fmt: skip
    publish_world(tmp_path, setup=setup)
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "reward model: the run's trained reward model (`reward_model/model/manifest.json`)" in (
        report
    )
    assert "org/rm" not in report.split("## Resolved configuration")[0]


def test_publish_writes_tables_plots_and_report(tmp_path):
    frames, references = make_world()
    paths = []
    for frame in frames:
        path = tmp_path / "evaluated" / f"{frame['method'].iloc[0]}.parquet"
        write_parquet(path, frame)
        paths.append(path)
    write_parquet(tmp_path / "evaluated" / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    benchmarks = tmp_path / "benchmarks"
    (benchmarks / "train").mkdir(parents=True)
    (benchmarks / "train" / "scalar.tsv").write_text("s\tmax_rss\n42.0\t300\n")
    (benchmarks / "evaluate").mkdir()
    (benchmarks / "evaluate" / "scalar.tsv").write_text("s\tmax_rss\n3.0\t200\n")
    write_parquet(tmp_path / "eval_prompts.parquet", pd.DataFrame({"post_id": POST_IDS}))
    results = tmp_path / "results"
    tables = publish(
        evaluated=paths,
        references=tmp_path / "evaluated" / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=write_kl(tmp_path, frames),
        results=results,
        benchmarks=benchmarks,
        data_files={"eval prompts": tmp_path / "eval_prompts.parquet"},
        judges=GOLD_JUDGE,
        main_judge="gold",
        **write_judged(tmp_path, frames, references),
        setup={
            "run": "fixture",
            "seed": 3,
            "data": {"source": "synthetic"},
            "base_models": {"tiny-gpt2": {"source": "config", "n_layer": 2, "extra": {"a": 1}}},
        },
        n_resamples=100,
        seed=3,
        main_method="scalar",
    )
    written = sorted(p.relative_to(results).as_posix() for p in results.rglob("*") if p.is_file())
    expected = sorted(
        [f"tables/{name}.{ext}" for name in TABLES for ext in ("csv", "md")]
        + [f"plots/{name}.png" for name in PLOTS]
        + ["REPORT.md", *seed_outputs()]
    )
    assert written == expected
    assert len(pd.read_csv(results / "tables" / "summary.csv")) == 7
    assert pd.read_csv(results / "tables" / "winrate.csv")["train_seconds"].iloc[0] == 42.0
    report = (results / "REPORT.md").read_text()
    for line in verdict_lines(tables, 0.95, "scalar", GOLD):
        assert f"- {line}\n" in report
    assert "**Over-optimisation in scalar**" in report
    assert "| eval prompts |      8 |" in report
    assert "| train    |      1 |" in report
    assert "Pearson r = 0.45" in report
    assert "- Models: base models `tiny-gpt2` (source=config, n_layer=2); reward model" in report
    for plot in PLOTS:
        assert (results / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"


def test_combine_rejects_inconsistent_inputs():
    frames, references = make_world()
    with pytest.raises(
        ValueError, match=r"one distinct method per file, found \[\['scalar'\], \['scalar'\]"
    ):
        combine([frames[0], frames[0]], references, TARGETS)
    moved = frames[0].assign(target_reward=frames[0]["target_reward"] + 0.5)
    with pytest.raises(ValueError, match=r"48 rows have a target_reward other than targets.json"):
        combine([moved], references, TARGETS)
    renamed = frames[0].replace({"target_name": {"q50": "q75"}})
    with pytest.raises(ValueError, match=r"target_name \['q75'\] not in targets.json"):
        combine([renamed], references, TARGETS)
    mixed = pd.concat([frames[0], frames[2].assign(method="scalar")])
    with pytest.raises(
        ValueError, match=r"methods \['scalar'\] mix rows with and without a target"
    ):
        combine([mixed], references, TARGETS)
    with pytest.raises(ValueError, match=r"no reference score for post_id \['p0'\]"):
        combine(frames, references.iloc[1:], TARGETS)


def test_publish_rejects_an_unknown_main_method(tmp_path):
    frames, references = make_world()
    write_parquet(tmp_path / "scalar.parquet", frames[0])
    write_parquet(tmp_path / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    with pytest.raises(ValueError, match=r"main_method 'dpo' is not among methods \['scalar'\]"):
        publish(
            evaluated=[tmp_path / "scalar.parquet"],
            references=tmp_path / "references.parquet",
            targets=tmp_path / "targets.json",
            kl=write_kl(tmp_path, frames),
            results=tmp_path / "results",
            main_method="dpo",
        )


def test_publish_rule_declares_every_file_publish_writes():
    rule = (Path(__file__).resolve().parents[1] / "workflow/rules/evaluate.smk").read_text()
    publish_rule = rule[rule.index("rule publish:") :]
    # The outputs only (the inputs name tables/judges.csv, which rule judge_agreement writes).
    rule = publish_rule[publish_rule.index("    output:") : publish_rule.index("    params:")]
    declared = set(re.findall(r'f"\{RESULTS\}/((?:tables|plots)/[\w.]+|REPORT\.md)"', rule))
    written = {f"tables/{name}.{ext}" for name in TABLES for ext in ("csv", "md")}
    written |= {f"plots/{name}.png" for name in PLOTS} | {"REPORT.md", *seed_outputs()}
    assert declared == written


def degenerate_world(*, scalar_too=False, prompts=POST_IDS):
    """The world with `text` writing the same summary at every target (so the same reward and
    gold within each prompt) and `scalar` anti-calibrated (reward = -target + noise), or also
    target-blind with `scalar_too`; only the given prompts."""
    frames, references = make_world()
    blind = [frames[1]] + ([frames[0]] if scalar_too else [])
    for frame in blind:
        frame["text"] = frame["method"] + " summary " + frame["post_id"]
        frame["reward"] = frame["post_id"].str[1:].astype(float) / 10
        frame["gold"] = 0.3 + frame["post_id"].str[1:].astype(float) / 20
    if not scalar_too:
        noise = np.random.default_rng(1).normal(size=len(frames[0]))
        frames[0]["reward"] = -frames[0]["target_reward"] + 0.1 * noise
    frames = [frame[frame["post_id"].isin(prompts)] for frame in frames]
    return frames, references[references["post_id"].isin(prompts)]


def degenerate_tables(**world):
    frames, references = degenerate_world(**world)
    frame = gold_judged(combine(frames, references, TARGETS), frames, references)
    return build_tables(frame, TARGETS, SETTINGS, main_method="scalar", judges=GOLD_JUDGE,
                        main_judge="gold")  # fmt: skip


def test_a_target_blind_method_has_an_undefined_correlation_with_its_reason():
    correlation = degenerate_tables()["correlation"].set_index("method")
    text = correlation.loc["text"]
    # Pooled over prompts its Spearman would be exactly 0 with a [0, 0] interval: undefined.
    for column in ("spearman", "spearman_gold"):
        assert np.isnan(text[[f"{column}_pooled", f"{column}_pooled_ci_low"]].astype(float)).all()
        assert np.isnan(float(text[f"{column}_pooled_ci_high"]))
        assert text[f"{column}_per_prompt_n"] == 0
    assert text["spearman_note"] == (
        "undefined: the reward-model score is the same at every target within each of its 8 prompts"
    )
    assert text["spearman_gold_note"] == (
        "undefined: the gold reward is the same at every target within each of its 8 prompts"
    )
    assert text["calibration_mae"] == pytest.approx(0.85)
    # A method that responds to the target keeps its figure, computed as before, and no note.
    frames, _ = degenerate_world()
    scalar = frames[0][frames[0]["target_name"] != "max+1sd"]
    assert correlation.loc["scalar", "spearman_pooled"] == spearman(
        scalar["target_reward"], scalar["reward"]
    )
    assert correlation.loc["scalar", "spearman_pooled"] < -0.8
    assert correlation.loc["scalar", ["spearman_note", "spearman_gold_note"]].tolist() == ["", ""]


def test_the_verdict_never_crowns_an_undefined_or_a_negative_correlation():
    tables = degenerate_tables()
    lines = verdict_lines(tables, 0.95, "scalar", GOLD)
    # scalar's is the only Spearman left (text's is undefined), and it is negative: no crown.
    (calibration,) = [line for line in lines if "pooled Spearman(target, achieved)" in line]
    assert calibration.startswith(
        "No method is calibrated: the highest calibration (pooled Spearman(target, achieved), "
        "in-range targets) is -0.866 [95% CI "
    )
    assert calibration.endswith(
        "(scalar), not above 0: asking for a higher reward does not give a higher one. Not "
        "ranked: text (undefined: the reward-model score is the same at every target within each "
        "of its 8 prompts)."
    )
    assert not any(line.startswith("Best calibration") for line in lines)
    assert not any("**text**" in line for line in lines)
    assert not any(line.startswith("Proxy and gold") and "text" in line for line in lines)
    comparisons = tables["comparisons"]
    assert comparisons[comparisons["metric"] == "spearman_pooled"].empty

    lines = verdict_lines(degenerate_tables(scalar_too=True), 0.95, "scalar", GOLD)
    assert (
        "No calibration (pooled Spearman(target, achieved), in-range targets) to rank: scalar "
        "(undefined: the reward-model score is the same at every target within each of its 8 "
        "prompts); text (undefined: the reward-model score is the same at every target within "
        "each of its 8 prompts)."
    ) in lines
    assert not any(line.startswith("Best calibration") for line in lines)


def test_figures_from_too_few_prompts_are_not_ranked():
    frames, references = make_world()
    few = POST_IDS[: MIN_PROMPTS - 1]
    frames = [frame[frame["post_id"].isin(few)] for frame in frames]
    references = references[references["post_id"].isin(few)]
    frame = gold_judged(combine(frames, references, TARGETS), frames, references)
    tables = build_tables(frame, TARGETS, SETTINGS, main_method="scalar", judges=GOLD_JUDGE,
                          main_judge="gold")  # fmt: skip
    correlation = tables["correlation"].set_index("method")
    assert correlation.loc["scalar", "spearman_per_prompt_n"] == 4
    assert np.isfinite(correlation.loc["scalar", "spearman_pooled"])  # reported, not ranked
    assert correlation.loc["scalar", "spearman_note"] == (
        "not ranked: the reward-model score varies with the target on 4 prompts (fewer than 5)"
    )
    assert tables["winrate"]["n_prompts"].tolist() == [4, 4, 4]
    assert tables["comparisons"].empty
    lines = verdict_lines(tables, 0.95, "scalar", GOLD)
    assert (
        "No gold score (held-out judge) to rank: scalar @ q50 (4 prompts, fewer than 5); "
        "text @ q50 (4 prompts, fewer than 5); sft (4 prompts, fewer than 5)."
    ) in lines
    assert not any("**" in line for line in lines[1:])  # the first names the judge


def test_report_shows_the_undefined_figure_as_nan_with_its_reason(tmp_path):
    frames, references = degenerate_world()
    paths = []
    for frame in frames:
        paths.append(tmp_path / f"{frame['method'].iloc[0]}.parquet")
        write_parquet(paths[-1], frame)
    write_parquet(tmp_path / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    publish(
        evaluated=paths,
        references=tmp_path / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=write_kl(tmp_path, frames),
        results=tmp_path / "results",
        n_resamples=100,
        seed=3,
        main_method="scalar",
    )
    report = (tmp_path / "results" / "REPORT.md").read_text()
    calibration = report.split("## Calibration (in-range targets)\n")[1].split("\n## ")[0]
    text_row = next(line for line in calibration.splitlines() if line.startswith("| text "))
    assert "undefined: the reward-model score is the same at every target" in text_row
    assert "0.000" not in text_row.split("|")[4] and "nan" in text_row.split("|")[4]
    assert "at least 5 prompts" in report
    csv = pd.read_csv(tmp_path / "results" / "tables" / "correlation.csv").set_index("method")
    assert np.isnan(csv.loc["text", "spearman_pooled"])
    assert csv.loc["text", "spearman_note"].startswith("undefined: the reward-model score")


def test_calibration_error_is_the_mean_absolute_error_of_the_per_target_means():
    frames, references = make_world()
    # A constant achieved reward of -0.25 at the in-range targets -1 and 0: off by +0.75 and
    # -0.25, a mean absolute error of 0.5 (a signed mean would give 0.25).
    frames[0]["reward"] = -0.25
    tables = build_tables(combine(frames, references, TARGETS), TARGETS, SETTINGS)
    correlation = tables["correlation"].set_index("method")
    assert correlation.loc["scalar", "calibration_mae"] == 0.5


INTERVALS = {
    "summary": ["achieved_reward", "gold_reward", "winrate_rm", "winrate_gold"],
    "correlation": ["spearman_pooled", "spearman_gold_pooled"],
    "comparisons": [""],
}


def test_the_tables_have_intervals_at_the_configured_level(tmp_path):
    frames, references = make_world()
    frame = combine(frames, references, TARGETS)
    tables = {
        level: build_tables(
            frame,
            TARGETS,
            BootstrapSettings(200, level, 3),
            kl=kl_summary(frames, BootstrapSettings(200, level, 3)),
            main_method="scalar",
        )
        for level in (0.5, 0.95)
    }
    for name, prefixes in INTERVALS.items():
        narrow, wide = tables[0.5][name], tables[0.95][name]
        for prefix in prefixes:
            low, high = f"{prefix}_ci_low".lstrip("_"), f"{prefix}_ci_high".lstrip("_")
            defined = wide[low].notna() & (wide[low] < wide[high])
            assert defined.any(), (name, prefix)
            assert (narrow[low][defined] >= wide[low][defined]).all(), (name, prefix)
            assert (narrow[high][defined] <= wide[high][defined]).all(), (name, prefix)
            width = (narrow[high] - narrow[low])[defined].sum()
            assert width < 0.8 * (wide[high] - wide[low])[defined].sum(), (name, prefix)
    # publish passes its level on: its tables are those of that level, and the REPORT says so.
    frames, references = make_world()
    paths = []
    for frame_ in frames:
        paths.append(tmp_path / f"{frame_['method'].iloc[0]}.parquet")
        write_parquet(paths[-1], frame_)
    write_parquet(tmp_path / "references.parquet", references)
    write_targets(tmp_path / "targets.json")
    published = publish(
        evaluated=paths,
        references=tmp_path / "references.parquet",
        targets=tmp_path / "targets.json",
        kl=write_kl(tmp_path, frames),
        results=tmp_path / "results",
        benchmarks=tmp_path / "benchmarks",
        n_resamples=200,
        level=0.5,
        seed=3,
        main_method="scalar",
    )
    for name in INTERVALS:
        pd.testing.assert_frame_equal(published[name], tables[0.5][name])
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert "- Intervals: 50% percentile bootstrap over prompts;" in report
    assert "[50% CI " in report and "[95% CI " not in report

"""Claims across training seeds (issue 19): the hierarchical bootstrap, the replicate and seed
tables, the verdict's paired differences across seeds, collapses, and the seed post's two
questions, on hand-built worlds whose figures are known exactly (every model's gold and reward
differ from another's by a constant on every prompt)."""

import json

import numpy as np
import pandas as pd
import pytest
from evaluation_world import GOLD_JUDGE, TARGETS, judged_world

from rewardcond.evaluation.collapses import CollapseRule, collapse_table
from rewardcond.evaluation.comparisons import correlations
from rewardcond.evaluation.judged import HeldOutJudge, attach_judges
from rewardcond.evaluation.questions import efficiency_table, extrapolation_table
from rewardcond.evaluation.replicates import replicate_comparisons, replicate_tables
from rewardcond.evaluation.summary import combine, summarize
from rewardcond.report import seed_plots
from rewardcond.report.render import build_tables
from rewardcond.report.replicates import publish_replicates
from rewardcond.report.seeds import efficiency_answer
from rewardcond.report.verdict import metric_labels, verdict_lines
from rewardcond.stats import (
    BootstrapSettings,
    hierarchical_bootstrap,
    hierarchical_mean_bootstrap,
    spearman,
)

RUN_SEED = 3
SETTINGS = BootstrapSettings(n_resamples=400, level=0.95, seed=RUN_SEED)
GOLD = HeldOutJudge("gold", "gold")
POSTS = [f"p{i}" for i in range(6)]
#: A per-prompt offset shared by every model, so paired differences are exact constants.
JITTER = {post: 0.02 * i - 0.05 for i, post in enumerate(POSTS)}


def model_frame(name, gold, *, slope=1.0, conditioned=True, finished=True, gold_slope=0.0):
    """One evaluated file: reward = slope x target (+ jitter) at every target of TARGETS
    (baselines: reward 0 + jitter), gold = `gold` + gold_slope x target (+ jitter)."""
    rows = []
    for target in TARGETS if conditioned else [None]:
        value = 0.0 if target is None else target.value
        for post in POSTS:
            rows.append(
                {"method": name, "post_id": post,
                 "target_name": "none" if target is None else target.name,
                 "target_reward": np.nan if target is None else target.value, "sample": 0,
                 "text": f"{name} {post} words", "n_tokens": 5, "finished": finished,
                 "n_candidates": 1, "reward": slope * value + JITTER[post],
                 "gold": gold + gold_slope * value + JITTER[post], "rouge1": 0.5,
                 "rouge2": 0.2, "rougeL": 0.4}
            )  # fmt: skip
    return pd.DataFrame(rows)


def world(models):
    """`combine`'s frame of `models` ({name: model_frame kwargs}) with the gold judge's columns."""
    frames = [model_frame(name, **kwargs) for name, kwargs in models.items()]
    references = pd.DataFrame(
        {"post_id": POSTS, "text": "reference", "reward": 0.0, "gold": 0.5}
    )  # fmt: skip
    frame = combine(frames, references, TARGETS)
    return attach_judges(frame, *judged_world(frames, references), GOLD_JUDGE)


def sft(name="sft", gold=0.5):
    return {name: {"gold": gold, "conditioned": False}}


def test_hierarchical_interval_contains_the_mean_and_widens_with_seed_variance():
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 1, 40) for _ in range(4)]

    def groups(offsets):
        return [
            ((lambda index, v=values + offset: float(v[index].mean())), 40)
            for values, offset in zip(noise, offsets, strict=True)
        ]

    same = hierarchical_bootstrap(groups([0, 0, 0, 0]), n_resamples=500, seed=1)
    spread = hierarchical_bootstrap(groups([-1.5, -0.5, 0.5, 1.5]), n_resamples=500, seed=1)
    assert same[0] == pytest.approx(np.mean([values.mean() for values in noise]))
    assert spread[0] == pytest.approx(same[0])  # the offsets average to 0
    for estimate, low, high in (same, spread):
        assert low < estimate < high
    assert spread[2] - spread[1] > 2 * (same[2] - same[1])
    # The vectorised path for means draws another stream from the same design.
    for offsets, general in (([0, 0, 0, 0], same), ([-1.5, -0.5, 0.5, 1.5], spread)):
        fast = hierarchical_mean_bootstrap(
            [values + offset for values, offset in zip(noise, offsets, strict=True)],
            n_resamples=2000, seed=1,
        )  # fmt: skip
        assert fast[0] == pytest.approx(general[0])
        assert fast[1:] == pytest.approx(general[1:], abs=0.1 * (general[2] - general[1]))
    # One replicate: the prompt bootstrap; a constant figure has a point interval.
    assert hierarchical_bootstrap([(lambda index: 0.7, 9)]) == (0.7, 0.7, 0.7)
    assert all(np.isnan(hierarchical_bootstrap([])))


def test_replicate_tables_average_over_seeds_and_keep_each_seed():
    frame = world({"scalar": {"gold": 0.8}, "scalar-s7": {"gold": 0.4}, **sft(), **sft("sft-s7")})
    replicates, seeds = replicate_tables(frame, SETTINGS, GOLD)
    row = replicates[(replicates["group"] == "scalar") & (replicates["target_name"] == "q50")
                     & (replicates["metric"] == "judge_gold_mean")].iloc[0]  # fmt: skip
    assert (row["n_seeds"], row["seeds"]) == (2, "3, 7")
    assert row["mean"] == pytest.approx(0.6)  # (0.8 + 0.4) / 2; jitter averages to 0
    assert row["seed_sd"] == pytest.approx(np.std([0.8, 0.4], ddof=1))
    assert row["ci_low"] <= 0.41 and row["ci_high"] >= 0.79  # the seeds' spread is inside
    own = seeds[(seeds["group"] == "scalar") & (seeds["target_name"] == "q50")
                & (seeds["metric"] == "judge_gold_mean")]  # fmt: skip
    assert own["seed"].tolist() == [3, 7] and own["model"].tolist() == ["scalar", "scalar-s7"]
    assert own["value"].to_numpy() == pytest.approx([0.8, 0.4])
    pooled = replicates[(replicates["group"] == "scalar")
                          & (replicates["metric"] == "spearman_pooled")]  # fmt: skip
    assert pooled["target_name"].tolist() == ["in_range"]
    # Each model's own Spearman is correlation.csv's figure, interval and all.
    correlation = correlations(frame, SETTINGS, GOLD).set_index("method")
    _, seeds = replicate_tables(frame, SETTINGS, GOLD, correlation=correlation.reset_index())
    own = seeds[seeds["metric"] == "spearman_pooled"].set_index("model")
    for model in ("scalar", "scalar-s7"):
        figure = [own.loc[model, column] for column in ("value", "ci_low", "ci_high")]
        columns = ["spearman_pooled", "spearman_pooled_ci_low", "spearman_pooled_ci_high"]
        assert figure == correlation.loc[model, columns].tolist()
        assert figure[0] > 0.8  # reward follows the target: a defined figure
    gold = seeds[seeds["metric"] == "spearman_judge_gold_pooled"]
    assert gold["value"].isna().all()  # gold is the same at every target: undefined, as there
    # 2 groups x (3 targets x 2 metrics + 2 Spearman) + sft x 2 metrics
    assert len(replicates) == 8 + 2 and len(seeds) == 2 * len(replicates)


def comparisons_of(models):
    frame = world(models)
    summary = summarize(frame, TARGETS, SETTINGS, GOLD_JUDGE)
    return replicate_comparisons(frame, summary, SETTINGS, "scalar", GOLD)


def gold_row(table, other="sft"):
    return table[(table["metric"] == "judge_gold_mean") & (table["other"] == other)].iloc[0]


def test_a_difference_that_flips_sign_with_the_seed_is_not_called():
    # Paired by seed: scalar - sft = +0.3, scalar-s7 - sft-s7 = 0.2 - 0.3 = -0.1.
    flip = comparisons_of(
        {"scalar": {"gold": 0.8}, "scalar-s7": {"gold": 0.2}, **sft(), **sft("sft-s7", 0.3)}
    )
    row = gold_row(flip)
    assert row["difference"] == pytest.approx(0.1)  # (+0.3 - 0.1) / 2
    assert (row["n_seeds"], row["n_ahead"], row["n_behind"]) == (2, 1, 1)
    assert row["seed_differences"] == "+0.300, -0.100"
    assert not row["consistent"] and not row["called"]
    labels, _ = metric_labels(GOLD)
    line = [text for text in seed_lines_of(flip, labels) if "gold score" in text][0]
    assert "sft: not consistent across seeds (1 of 2 seeds ahead; +0.100 [" in line
    assert "beats" not in line and "loses to" not in line


def seed_lines_of(table, labels):
    from rewardcond.report.seeds import seed_lines

    return seed_lines(table, labels, 0.95)


def test_a_difference_that_holds_on_every_seed_is_called():
    agree = comparisons_of(
        {"scalar": {"gold": 0.8}, "scalar-s7": {"gold": 0.7}, **sft(), **sft("sft-s7")}
    )
    row = gold_row(agree)
    assert row["difference"] == pytest.approx(0.25)
    # Two seeds: the resampled means are 0.2, 0.25 or 0.3, so the interval is [0.2, 0.3].
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.2, 0.3))
    assert row["significant"] and row["consistent"] and row["called"]
    labels, _ = metric_labels(GOLD)
    line = [text for text in seed_lines_of(agree, labels) if "gold score" in text][0]
    assert line.startswith("scalar @ q50 on gold score (held-out judge), across seeds")
    assert "beats sft (+0.250 [0.200, 0.300], 2 of 2 seeds ahead)" in line


def test_the_verdict_uses_the_seeds_only_with_replicates(tmp_path):
    one = world({"scalar": {"gold": 0.8}, "text": {"gold": 0.6, "slope": 0.2}, **sft()})
    tables = build_tables(one, TARGETS, SETTINGS, main_method="scalar", judges=GOLD_JUDGE,
                          main_judge="gold")  # fmt: skip
    today = verdict_lines(tables, 0.95, "scalar", GOLD)
    seed_tables, section, shown = publish_replicates(
        one, tables["summary"], TARGETS, SETTINGS, tmp_path, main_method="scalar", judge=GOLD
    )
    assert (section, shown) == ("", False)
    assert set(seed_tables["seed_comparisons"]["n_seeds"]) == {1}
    assert verdict_lines(tables | seed_tables, 0.95, "scalar", GOLD) == today
    assert (
        "scalar on gold score (held-out judge): beats text @ q50 (+0.200 [0.200, 0.200]), sft "
        "(+0.300 [0.300, 0.300])." in today
    )
    two = world({"scalar": {"gold": 0.8}, "scalar-s7": {"gold": 0.4}, **sft(), **sft("sft-s7")})
    tables = build_tables(two, TARGETS, SETTINGS, main_method="scalar", judges=GOLD_JUDGE,
                          main_judge="gold")  # fmt: skip
    seed_tables, section, shown = publish_replicates(
        two, tables["summary"], TARGETS, SETTINGS, tmp_path, main_method="scalar", judge=GOLD
    )
    lines = verdict_lines(tables | seed_tables, 0.95, "scalar", GOLD)
    assert shown and "## Replicates and collapses" in section
    assert "| scalar @ q50 |       2 | 0.000 [" in section and "| 0 of 2      |" in section
    note = [i for i, line in enumerate(lines) if line.startswith("With replicates no trained")]
    assert len(note) == 1
    # No one-seed model is crowned (the luckiest seed): the judge line, then the seed bullets.
    assert note == [1] and not any(line.startswith("Highest") for line in lines)
    assert lines[note[0] + 1].startswith("scalar @ q50 on achieved (reward-model) reward, across")
    assert any("sft: not consistent across seeds (1 of 2 seeds ahead" in line for line in lines)
    assert not any(line.startswith("scalar on gold score") for line in lines)


def test_collapses_by_eos_and_by_judge_margin_are_counted_and_kept_in_the_means():
    frame = world({
        "scalar": {"gold": 0.8}, "scalar-s7": {"gold": 0.1},  # 0.4 below sft-s7: collapsed
        "text": {"gold": 0.6}, "text-s7": {"gold": 0.6, "finished": False},  # EOS rate 0
        "dpo": {"gold": 0.3, "conditioned": False},  # 0.2 below sft: within the margin
        **sft(), **sft("sft-s7"),
    })  # fmt: skip
    summary = summarize(frame, TARGETS, SETTINGS, GOLD_JUDGE)
    table = collapse_table(summary, CollapseRule(0.5, 0.25), RUN_SEED, GOLD).set_index("method")
    assert table["n_collapsed"].to_dict() == {"scalar": 1, "text": 1, "dpo": 0, "sft": 0}
    assert table["n_seeds"].to_dict() == {"scalar": 2, "text": 2, "dpo": 1, "sft": 2}
    assert table.loc["scalar", "collapsed_seeds"] == "7"
    assert table.loc["scalar", "why"] == (
        "s7: gold score 0.100 below sft-s7's 0.500 by 0.400 > 0.25"
    )
    assert table.loc["text", "why"] == "s7: EOS rate 0.00 < 0.5"
    replicates, _ = replicate_tables(frame, SETTINGS, GOLD)
    kept = replicates[(replicates["group"] == "scalar") & (replicates["target_name"] == "q50")
                      & (replicates["metric"] == "judge_gold_mean")]  # fmt: skip
    assert kept["mean"].iloc[0] == pytest.approx(0.45)  # the collapsed seed's 0.1 is in it
    stricter = collapse_table(summary, CollapseRule(0.5, 0.1), RUN_SEED, GOLD)
    assert stricter.set_index("method").loc["dpo", "n_collapsed"] == 1


def capture(monkeypatch):
    figures = []
    monkeypatch.setattr(seed_plots, "_save", lambda figure, path: figures.append(figure))
    return figures


def test_extrapolation_table_figure_and_answer(monkeypatch, tmp_path):
    frame = world({
        "scalar": {"gold": 0.5, "gold_slope": 0.1}, "scalar-s7": {"gold": 0.5, "gold_slope": 0.1},
        "text": {"gold": 0.5, "slope": 0.0}, **sft(),
    })  # fmt: skip
    replicates, _ = replicate_tables(frame, SETTINGS, GOLD)
    table = extrapolation_table(replicates, TARGETS, GOLD)
    assert len(table) == 2 * 2 * 3  # metrics x methods x targets
    rm = table[(table["method"] == "scalar") & (table["metric"] == "achieved_reward")]
    assert rm["target_name"].tolist() == ["q05", "q50", "max+1sd"]
    assert rm["mean"].to_numpy() == pytest.approx([-1.0, 0.0, 2.0])
    assert rm["n_seeds"].tolist() == [2, 2, 2]
    figures = capture(monkeypatch)
    seed_plots.plot_extrapolation(table, 0.0, tmp_path / "x.png", GOLD)
    axis = figures[0].axes[0]
    drawn = {line.get_label(): line for line in axis.get_lines()}
    assert list(drawn["training maximum"].get_xdata()) == [0.0, 0.0]
    assert list(drawn["y = x"].get_ydata()) == [-1.0, 2.0]
    points = [line for line in axis.get_lines() if line.get_marker() == "o"]
    drawn_y = [list(np.round(line.get_ydata(), 6)) for line in points]
    assert drawn_y == [[-1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]  # scalar follows y = x, text is flat
    tables = build_tables(frame, TARGETS, SETTINGS, main_method="scalar", judges=GOLD_JUDGE,
                          main_judge="gold")  # fmt: skip
    _, section, _ = publish_replicates(
        frame, tables["summary"], TARGETS, SETTINGS, tmp_path, main_method="scalar", judge=GOLD
    )
    assert "scalar (2 seeds): at q50: RM 0.000 [" in section
    assert "maximum (max+1sd against q50): RM holds, gold score holds." in section
    assert "text (1 seeds)" in section
    assert "maximum (max+1sd against q50): RM saturates, gold score saturates." in section
    assert "prove nothing about real summarisation" in section


def test_efficiency_table_and_figure_by_training_rows(monkeypatch, tmp_path):
    frame = world({
        "scalar": {"gold": 0.8, "gold_slope": 0.1}, "scalar-f30": {"gold": 0.6, "gold_slope": 0.1},
        "scalar-f30-s7": {"gold": 0.4, "gold_slope": 0.1}, "text": {"gold": 0.5},
        "tokens": {"gold": 0.7, "conditioned": False},
        "tokens-f30": {"gold": 0.3, "conditioned": False}, **sft(),
    })  # fmt: skip
    replicates, _ = replicate_tables(frame, SETTINGS, GOLD)
    rows = {"scalar": 1000, "scalar-f30": 300, "tokens": 1000, "tokens-f30": 300, "text": 1000}
    table = efficiency_table(replicates, GOLD, rows)
    gold = table[table["metric"] == "judge_gold_mean"]
    assert gold[["method", "pool_percent", "training_rows", "target_name"]].values.tolist() == [
        ["scalar", 30, 300, "q50"], ["scalar", 100, 1000, "q50"],
        ["tokens", 30, 300, "none"], ["tokens", 100, 1000, "none"], ["text", 100, 1000, "q50"],
    ]  # fmt: skip
    assert gold["mean"].to_numpy() == pytest.approx([0.5, 0.8, 0.3, 0.7, 0.5])
    assert gold["n_seeds"].tolist() == [2, 1, 1, 1, 1]
    pooled = table[table["metric"] == "spearman_judge_gold_pooled"]
    assert pooled["method"].tolist() == ["scalar", "scalar", "text"]  # tokens has no target
    assert pooled["mean"].iloc[2] != pooled["mean"].iloc[2]  # text's gold ignores the target
    answer = efficiency_answer(table, GOLD)
    assert answer[0].startswith("scalar: 30% (300 rows): gold score 0.500 [")
    own = frame[(frame["method"] == "scalar-f30") & frame["in_range"].fillna(False)]
    expected = spearman(own["target_reward"], own["gold"])  # both seeds': gold differs by 0.2
    assert f"Spearman(target, gold) {expected:.3f} [" in answer[0]
    assert answer[3] == (
        "At 30% of the pool, gold score: scalar 0.500 against tokens 0.300; scalar is ahead "
        "(the intervals do not overlap)."
    )
    assert answer[4].startswith("At 100% of the pool, gold score: scalar 0.800 against tokens")
    figures = capture(monkeypatch)
    seed_plots.plot_efficiency(table, tmp_path / "e.png", GOLD)
    axis = figures[0].axes[0]
    assert axis.get_xlabel() == "training examples (rows)"
    lines = [line for line in axis.get_lines() if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in lines] == [[300.0, 1000.0], [300.0, 1000.0],
                                                          [1000.0]]  # fmt: skip
    no_rows = efficiency_table(replicates, GOLD, {"scalar": 1000})
    seed_plots.plot_efficiency(no_rows, tmp_path / "e.png", GOLD)
    assert figures[1].axes[0].get_xlabel().startswith("percent of the training pool")


def test_publish_writes_every_seed_output_even_without_variants(tmp_path):
    reports = {"scalar": tmp_path / "scalar.json"}
    reports["scalar"].write_text(json.dumps({"method": "scalar", "rows": 12}))
    frame = world({"scalar": {"gold": 0.8}, **sft()})
    tables = build_tables(frame, TARGETS, SETTINGS, main_method="scalar", judges=GOLD_JUDGE,
                          main_judge="gold")  # fmt: skip
    publish_replicates(frame, tables["summary"], TARGETS, SETTINGS, tmp_path / "out",
                       main_method="scalar", judge=GOLD, trainset_reports=reports)  # fmt: skip
    written = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*"))  # fmt: skip
    assert written == [
        "plots", "plots/efficiency.png", "plots/extrapolation.png", "tables",
        "tables/collapses.csv", "tables/collapses.md", "tables/efficiency.csv",
        "tables/efficiency.md", "tables/extrapolation.csv", "tables/extrapolation.md",
        "tables/replicates.csv", "tables/replicates.md", "tables/seed_comparisons.csv",
        "tables/seed_comparisons.md", "tables/seeds.csv",
    ]  # fmt: skip
    assert pd.read_csv(tmp_path / "out" / "tables" / "efficiency.csv").empty
    reports["scalar"].write_text(json.dumps({"rows": "12"}))
    with pytest.raises(ValueError, match=r"scalar.json: 'rows' is '12'; expected a non-negative"):
        publish_replicates(frame, tables["summary"], TARGETS, SETTINGS, tmp_path / "out",
                           trainset_reports=reports)  # fmt: skip


def test_an_interval_that_excludes_zero_is_not_enough_when_a_seed_disagrees():
    models = {**sft()}
    for k, gold in enumerate([1.5, 1.5, 1.5, 0.49]):
        models["scalar" if k == 0 else f"scalar-s{10 + k}"] = {"gold": gold}
        if k:
            models.update(sft(f"sft-s{10 + k}"))
    row = gold_row(comparisons_of(models))
    assert row["difference"] == pytest.approx((3 * 1.0 - 0.01) / 4)
    assert row["ci_low"] > 0 and row["significant"]  # 4 of 4 draws of the -0.01 seed: p 0.004
    outcome = (row["n_ahead"], row["n_behind"], row["consistent"], row["called"])
    assert outcome == (3, 1, False, False)
    labels, _ = metric_labels(GOLD)
    line = [text for text in seed_lines_of(comparisons_of(models), labels) if "gold" in text][0]
    assert "sft: not consistent across seeds (3 of 4 seeds ahead; +0.748 [" in line


def test_without_a_judge_the_seed_outputs_hold_the_proxy_only(tmp_path):
    frame = world({"scalar": {"gold": 0.8}, "scalar-f30": {"gold": 0.6}, **sft()})
    tables = build_tables(frame, TARGETS, SETTINGS, main_method="scalar")
    seed_tables, section, shown = publish_replicates(
        frame, tables["summary"], TARGETS, SETTINGS, tmp_path, main_method="scalar"
    )
    assert shown  # a part-pool model
    assert set(seed_tables["replicates"]["metric"]) == {"achieved_reward", "spearman_pooled"}
    assert seed_tables["collapses"].set_index("method")["why"].to_dict() == {
        "scalar": "EOS rate only (no held-out judge)",
        "scalar-f30": "EOS rate only (no held-out judge)",
        "sft": "",
    }
    assert set(seed_tables["extrapolation"]["metric"]) == {"achieved_reward"}
    assert seed_tables["efficiency"].empty
    assert "2. Is a scalar reward" in section and "Not asked in this run: no held-out judge." in (
        section
    )
    assert set(seed_tables["seed_comparisons"]["metric"]) == {"achieved_reward", "winrate_rm"}


def test_efficiency_pairs_scalar_with_tokens_by_seed_at_each_pool_percent():
    from rewardcond.evaluation.summary import summarize
    from rewardcond.report.seeds import efficiency_pairs

    frame = world({
        "scalar": {"gold": 0.8}, "scalar-f30": {"gold": 0.6}, "scalar-f30-s7": {"gold": 0.4},
        "tokens": {"gold": 0.7, "conditioned": False},
        "tokens-f30": {"gold": 0.3, "conditioned": False},
        "tokens-f30-s7": {"gold": 0.45, "conditioned": False}, **sft(),
    })  # fmt: skip
    assert efficiency_pairs([10, 30, 100, 30]) == [
        ("scalar-f10", "tokens-f10"), ("scalar-f30", "tokens-f30")
    ]  # fmt: skip
    summary = summarize(frame, TARGETS, SETTINGS, GOLD_JUDGE)
    across = replicate_comparisons(
        frame, summary, SETTINGS, "scalar", GOLD, extra_pairs=efficiency_pairs([30, 100])
    )
    pair = across[(across["method"] == "scalar-f30") & (across["metric"] == "judge_gold_mean")]
    # Paired by seed: 0.6 - 0.3 = +0.3 (run seed), 0.4 - 0.45 = -0.05 (seed 7): they disagree.
    assert pair[["other", "n_seeds", "seed_differences"]].values.tolist() == [
        ["tokens-f30", 2, "+0.300, -0.050"]
    ]
    # The verdict's bullets stay the main method's only.
    labels, _ = metric_labels(GOLD)
    line = [text for text in seed_lines_of(across, labels) if "gold score" in text][0]
    assert line.startswith("scalar @ q50 on gold score") and line.count("tokens-f30") == 1
    replicates, _ = replicate_tables(frame, SETTINGS, GOLD)
    rows = {"scalar": 1000, "scalar-f30": 300, "tokens": 1000, "tokens-f30": 300}
    answer = efficiency_answer(efficiency_table(replicates, GOLD, rows), GOLD, across)
    assert answer[-2] == (
        "At 30% of the pool, gold score: scalar 0.500 against tokens 0.375; not consistent "
        "across seeds (1 of 2 seeds ahead; +0.125 [-0.050, 0.300])."
    )
    assert answer[-1] == (
        "At 100% of the pool, gold score: scalar 0.800 against tokens 0.700; scalar is ahead, "
        "paired by seed and prompt (+0.100 [0.100, 0.100], 1 of 1 seeds ahead)."
    )

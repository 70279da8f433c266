"""Check a finished demo run: every published file is there and the acceptance figures hold:
scalar's Spearman(target, achieved) >= 0.5 on the reward model and on gold, scalar at its top
in-range target beats sft on gold reward, rloo is there and beats sft on the reward model it is
trained against, every method x target has its KL from sft (issue 16) in summary.csv and every
method in winrate.csv, with the frontier plot and the matched-KL table, and the gold judge agrees
with the labellers on valid2 more often than the proxy and is the held-out side of the matched-KL
and over-optimisation tables (issue 17)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

MIN_SPEARMAN = 0.5


def main(run_dir: Path) -> int:
    expected = [
        "tables/summary.csv",
        "tables/summary.md",
        "tables/correlation.csv",
        "tables/winrate.csv",
        "tables/matched_kl.csv",
        "tables/overoptimisation.csv",
        "plots/frontier.png",
        "REPORT.md",
        "reward_model/accuracy.csv",
        "tables/judges.csv",
        "tables/examples.parquet",
    ]
    missing = [name for name in expected if not (run_dir / name).is_file()]
    plots = sorted((run_dir / "plots").glob("*.png"))
    problems = [f"missing {name}" for name in missing]
    if len(plots) < 3:
        problems.append(f"expected at least 3 plots under {run_dir / 'plots'}, found {len(plots)}")
    if not missing:
        correlation = pd.read_csv(run_dir / "tables/correlation.csv").set_index("method")
        print(correlation.to_string())
        for column in ("spearman_pooled", "spearman_gold_pooled"):
            value = correlation.loc["scalar", column]
            if not value >= MIN_SPEARMAN:
                problems.append(f"scalar {column} {value:.3f} < {MIN_SPEARMAN}")
        summary = pd.read_csv(run_dir / "tables/summary.csv")
        print(summary.to_string())
        in_range = summary[(summary["method"] == "scalar") & summary["in_range"].astype(bool)]
        top = in_range.loc[in_range["target_reward"].idxmax()]
        sft = summary.loc[summary["method"] == "sft"].iloc[0]
        for kind, column in (("RM", "achieved_reward_mean"), ("gold", "gold_reward_mean")):
            print(
                f"scalar at its top in-range target ({top['target_name']}) vs sft, {kind} reward:"
                f" {top[column]:.3f} vs {sft[column]:.3f}"
            )
        # Issue 10: conditioning must work on the ground truth. The RM comparison is reported
        # only: the proxy is what the methods over-optimise.
        if not top["gold_reward_mean"] > sft["gold_reward_mean"]:
            problems.append("scalar at its top in-range target does not beat sft on gold reward")
        # Issue 16: the RLHF arm must visibly optimise the reward model it is trained against.
        rloo = summary.loc[summary["method"] == "rloo"]
        if not len(rloo):
            problems.append("no rloo rows in summary.csv")
        else:
            rloo = rloo.iloc[0]
            print(
                f"rloo vs sft: RM {rloo['achieved_reward_mean']:.3f} vs "
                f"{sft['achieved_reward_mean']:.3f}, gold {rloo['gold_reward_mean']:.3f} vs "
                f"{sft['gold_reward_mean']:.3f}"
            )
            if not rloo["achieved_reward_mean"] > sft["achieved_reward_mean"]:
                problems.append("rloo does not beat sft on the reward model it is trained against")
        # Issue 17: the demo's judge is the world's gold function, which generated the labels;
        # it must agree with them more often than the proxy learnt from them.
        judges = pd.read_csv(run_dir / "tables/judges.csv").set_index("judge")
        print(judges.to_string())
        if list(judges.index) != ["proxy", "gold"]:
            problems.append(f"judges.csv rows {list(judges.index)}; expected ['proxy', 'gold']")
        elif not judges.loc["gold", "agreement"] > judges.loc["proxy", "agreement"]:
            problems.append("the gold judge does not agree with the labels more than the proxy")
        # Issue 17 §1: the gold judge's columns are the gold columns' numbers.
        for judge, gold in (("judge_gold_mean", "gold_reward_mean"),
                            ("judge_gold_winrate", "winrate_gold")):  # fmt: skip
            if judge not in summary.columns:
                problems.append(f"summary.csv has no {judge} column")
            elif not np.allclose(summary[judge], summary[gold], rtol=0, atol=1e-12):
                problems.append(f"summary.csv {judge} differs from {gold}")
    if not missing:
        problems += kl_problems(run_dir)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print("demo check:", "FAILED" if problems else "passed")
    return 1 if problems else 0


def kl_problems(run_dir: Path) -> list[str]:
    """Issue 16: `kl_sft` for every method x target of summary.csv and every method of
    winrate.csv (a number; inf is one, where a sample holds a token sft cannot emit), 0 for sft;
    the matched-KL table filled."""
    problems = []
    for name in ("summary", "winrate"):
        table = pd.read_csv(run_dir / f"tables/{name}.csv")
        if "kl_sft" not in table.columns:
            problems.append(f"tables/{name}.csv has no kl_sft column")
            continue
        print(table[["method", "target_name", "kl_sft", "kl_sft_analytic"]].to_string())
        missing = table.loc[table["kl_sft"].isna(), ["method", "target_name"]].values.tolist()
        if missing:
            problems.append(f"tables/{name}.csv: no kl_sft for {missing}")
        sft = table.loc[table["method"] == "sft", "kl_sft"]
        if not (sft == 0).all():
            problems.append(f"tables/{name}.csv: sft's kl_sft is {sft.tolist()}, expected 0")
    matched = pd.read_csv(run_dir / "tables/matched_kl.csv")
    print(matched.to_string())
    if sorted(matched["metric"]) != ["achieved_reward", "judge_gold_mean"]:
        problems.append(
            "tables/matched_kl.csv: expected scalar vs rloo on the main judge gold's score "
            "(judge_gold_mean) and RM reward"
        )
    # Issue 17 §1: the over-optimisation table's held-out side is the main judge, gold.
    flags = pd.read_csv(run_dir / "tables/overoptimisation.csv")
    if "judge_gold_mean_difference" not in flags.columns:
        problems.append("tables/overoptimisation.csv has no judge_gold_mean_difference column")
    return problems


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

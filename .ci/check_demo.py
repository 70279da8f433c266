"""Check a finished demo run: every published file is there and the acceptance figures hold."""

import sys
from pathlib import Path

import pandas as pd

MIN_SPEARMAN = 0.5


def main(run_dir: Path) -> int:
    expected = [
        "tables/summary.csv",
        "tables/summary.md",
        "tables/correlation.csv",
        "tables/winrate.csv",
        "REPORT.md",
        "reward_model/accuracy.csv",
    ]
    missing = [name for name in expected if not (run_dir / name).is_file()]
    plots = sorted((run_dir / "plots").glob("*.png"))
    problems = [f"missing {name}" for name in missing]
    if len(plots) < 3:
        problems.append(f"expected at least 3 plots under {run_dir / 'plots'}, found {len(plots)}")
    if not missing:
        correlation = pd.read_csv(run_dir / "tables/correlation.csv").set_index("method")
        print(correlation.to_string())
        proxy = correlation.loc["scalar", "spearman_pooled"]
        if not proxy >= MIN_SPEARMAN:
            problems.append(f"scalar spearman_pooled {proxy:.3f} < {MIN_SPEARMAN}")
        summary = pd.read_csv(run_dir / "tables/summary.csv")
        print(summary.to_string())
        in_range = summary[(summary["method"] == "scalar") & summary["in_range"].astype(bool)]
        top = in_range.loc[in_range["target_reward"].idxmax()]
        scalar_best = top["achieved_reward_mean"]
        sft_reward = summary.loc[summary["method"] == "sft", "achieved_reward_mean"].iloc[0]
        # Reported, not enforced: on 64 prompts the two are within each other's intervals.
        print(
            f"scalar at its top in-range target ({top['target_name']}) vs sft, achieved reward: "
            f"{scalar_best:.3f} vs {sft_reward:.3f}"
        )
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print("demo check:", "FAILED" if problems else "passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

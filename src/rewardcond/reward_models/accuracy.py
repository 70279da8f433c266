"""The `reward_model_accuracy` stage: how often a reward model prefers the summary the labeller
chose, on held-out comparisons, with bootstrap intervals, as Stiennon et al. (2020) report it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_table
from rewardcond.stats import bootstrap_ci

# Anchors from other setups (not measured here), shown beside the measured rows for scale.
ANCHORS = (
    ("OpenAssistant/reward-model-deberta-v3-large-v2", 0.72, "its model card, TL;DR comparisons"),
    ("Pythia-1B RM", 0.63, "Huang et al. 2024, TL;DR valid"),
    ("Pythia-2.8B RM", 0.67, "Huang et al. 2024, TL;DR valid"),
    ("Pythia-6.9B RM", 0.69, "Huang et al. 2024, TL;DR valid"),
    ("human inter-labeller agreement", 0.77, "Stiennon et al. 2020"),
)
ACCURACY_SPLITS = ("valid2", "valid1")
ACCURACY_DOMAINS = ("tldr", "cnndm")


def pairwise_correct(reward_0, reward_1, choice) -> np.ndarray:
    """Per comparison: 1 if the RM prefers the labeller's choice, 0 if not, 0.5 on a tie."""
    margin = np.asarray(reward_1, dtype=np.float64) - np.asarray(reward_0, dtype=np.float64)
    sign = np.where(np.asarray(choice) == 1, 1.0, -1.0) * margin
    return np.where(sign > 0, 1.0, np.where(sign < 0, 0.0, 0.5))


def accuracy_table(
    comparisons: pd.DataFrame,
    scored: pd.DataFrame,
    *,
    model_name: str,
    bayes_optimal: dict[str, float] | None = None,
    samples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy of a reward model on valid2 and valid1 (and per labeller confidence), with CIs,
    per domain: TL;DR rows first (`domain` tldr), then CNN/DailyMail ones (`cnndm`) when the
    comparisons hold any (the paper's transfer test; never mixed into the TL;DR rows).

    `scored` holds `post_id`, `text`, `reward` (the scored completions); a comparison whose summary
    has no score (skipped as empty) is left out and counted in `n_unscored`. With
    `bayes_optimal` (per split, synthetic world) the table adds the Bayes-optimal accuracy and the
    share of the learnable signal captured, (accuracy - 0.5) / (bayes - 0.5). Anchor rows from other
    setups (all TL;DR) follow, marked `kind = anchor`. Comparisons without a `domain` column are
    TL;DR.
    """
    rewards = scored.drop_duplicates(["post_id", "text"]).set_index(["post_id", "text"])["reward"]
    domains = comparisons["domain"] if "domain" in comparisons.columns else "tldr"
    comparisons = comparisons.assign(domain=domains)
    present = set(comparisons["domain"])
    rows = []
    for domain, split in [(d, s) for d in ACCURACY_DOMAINS for s in ACCURACY_SPLITS]:
        if domain != "tldr" and domain not in present:
            continue
        subset = comparisons[(comparisons["split"] == split) & (comparisons["domain"] == domain)]
        reward_0 = rewards.reindex(
            pd.MultiIndex.from_arrays([subset["post_id"], subset["summary_0"]])
        )
        reward_1 = rewards.reindex(
            pd.MultiIndex.from_arrays([subset["post_id"], subset["summary_1"]])
        )
        known = reward_0.notna().to_numpy() & reward_1.notna().to_numpy()
        correct = pairwise_correct(
            reward_0.to_numpy()[known],
            reward_1.to_numpy()[known],
            subset["choice"].to_numpy()[known],
        )
        confidence = subset["confidence"].to_numpy(dtype=np.float64)[known]
        groups = [("all", np.ones(len(correct), dtype=bool))]
        groups += [
            (f"confidence={c:g}", confidence == c)
            for c in np.unique(confidence[np.isfinite(confidence)])
        ]
        for group, mask in groups:
            low, high = bootstrap_ci(correct[mask], n_resamples=samples, seed=seed)
            rows.append(
                {
                    "kind": "measured",
                    "model": model_name,
                    "domain": domain,
                    "split": split,
                    "subset": group,
                    "n": int(mask.sum()),
                    "n_unscored": int((~known).sum()) if group == "all" else 0,
                    "accuracy": float(correct[mask].mean()) if mask.any() else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    table = pd.DataFrame(rows)
    if bayes_optimal:
        table["bayes_optimal"] = [
            bayes_optimal.get(split, np.nan) if subset == "all" and domain == "tldr" else np.nan
            for split, subset, domain in zip(
                table["split"], table["subset"], table["domain"], strict=True
            )
        ]
        table["signal_captured"] = (table["accuracy"] - 0.5) / (table["bayes_optimal"] - 0.5)
    anchors = pd.DataFrame(
        [
            {
                "kind": "anchor",
                "model": name,
                "domain": "tldr",
                "split": "other setup",
                "subset": "all",
                "accuracy": accuracy,
                "source": source,
            }
            for name, accuracy, source in ANCHORS
        ]
    )
    table = pd.concat([table.assign(source="this run"), anchors], ignore_index=True)
    return table.astype({"n": "Int64", "n_unscored": "Int64"})


def measure_accuracy(
    *,
    comparisons_path: str | os.PathLike,
    scored_path: str | os.PathLike,
    data_report_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    samples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The `reward_model_accuracy` stage: `accuracy_table` written as CSV and Markdown."""
    scored = pd.read_parquet(scored_path, columns=["post_id", "text", "reward", "reward_model"])
    report = json.loads(Path(data_report_path).read_text())
    table = accuracy_table(
        pd.read_parquet(comparisons_path),
        scored,
        model_name=str(scored["reward_model"].iloc[0]) if len(scored) else "none",
        bayes_optimal=report.get("bayes_optimal_accuracy"),
        samples=samples,
        seed=seed,
    )
    write_table(
        table,
        csv_path,
        md_path,
        title="Reward-model accuracy on held-out comparisons (95% bootstrap CIs; "
        "rows of kind 'anchor' come from other setups and were not measured here)",
    )
    return table

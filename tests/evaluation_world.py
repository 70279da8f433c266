"""A small evaluated world for the evaluation/report tests: 2 conditioned methods x 3 targets
(two in range) + 1 baseline, 8 prompts, 2 samples each; numbers chosen so the answers are known."""

import json

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_parquet
from rewardcond.evaluation.judged import attach_judges
from rewardcond.evaluation.targets import Target
from rewardcond.judges import ROW_KEYS

TARGETS = [Target("q05", -1.0, True), Target("q50", 0.0, True), Target("max+1sd", 2.0, False)]
POST_IDS = [f"p{i}" for i in range(8)]
SAMPLES = 2


def make_world(
    *, scalar_gold_slope: float = -0.2, text_gold: float = 0.4, with_gold: bool = True
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Evaluated frames for `scalar`, `text` (conditioned) and `sft` (baseline), and references.

    scalar: reward tracks the target closely; gold = 0.5 + scalar_gold_slope x target.
    text: reward rises weakly with the target; gold = text_gold (flat).
    sft: no target; reward around 0.2, gold 0.4. References: reward 0, gold 0.5.
    """
    rng = np.random.default_rng(0)
    frames = []
    for method in ("scalar", "text", "sft"):
        rows = []
        targets = TARGETS if method != "sft" else [None]
        for target in targets:
            for post_id in POST_IDS:
                for sample in range(SAMPLES):
                    noise = rng.normal()
                    value = 0.0 if target is None else target.value
                    if method == "scalar":
                        reward, gold = value + 0.1 * noise, 0.5 + scalar_gold_slope * value
                    elif method == "text":
                        reward, gold = 0.3 * value + 0.5 * noise, text_gold
                    else:
                        reward, gold = 0.2 + 0.3 * noise, 0.4
                    rows.append(
                        {
                            "method": method,
                            "post_id": post_id,
                            "target_name": "none" if target is None else target.name,
                            "target_reward": np.nan if target is None else target.value,
                            "sample": sample,
                            "text": f"{method} summary {post_id} {sample} words here",
                            "n_tokens": 6 + sample,
                            "finished": sample == 0,
                            "n_candidates": 1,
                            "reward": reward,
                            "gold": (gold + 0.02 * rng.normal()) if with_gold else np.nan,
                            "rouge1": 0.5,
                            "rouge2": 0.25,
                            "rougeL": 0.4,
                        }
                    )
        frames.append(pd.DataFrame(rows))
    references = pd.DataFrame(
        {
            "post_id": POST_IDS,
            "text": [f" reference {post_id}" for post_id in POST_IDS],
            "reward": 0.0,
            "gold": 0.5 if with_gold else np.nan,
        }
    )
    return frames, references


def write_targets(path) -> None:
    path.write_text(
        json.dumps([{"name": t.name, "value": t.value, "in_range": t.in_range} for t in TARGETS])
    )


#: KL from sft per method and target of `make_kl`'s world (nats per sequence, before noise).
KL_OF = {("scalar", "q05"): 0.1, ("scalar", "q50"): 0.4, ("scalar", "max+1sd"): 1.6,
         ("text", "q05"): 0.3, ("text", "q50"): 0.3, ("text", "max+1sd"): 0.3,
         ("sft", "none"): 0.0, ("rloo", "none"): 0.45, ("bon4", "none"): 0.6}  # fmt: skip


def make_kl(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Per-prompt KL rows (the `kl` rules' layout) for each evaluated frame: `KL_OF` plus
    +-0.01 alternating over prompts (so each mean is exactly `KL_OF`); sft exactly 0; best-of-N
    with the Beirami estimate at 0.6 and its analytic bound."""
    out = []
    for frame in frames:
        rows = frame.drop_duplicates(["post_id", "target_name"])
        method = rows["method"].iloc[0]
        bon = method.startswith("bon")
        n = int(rows["n_candidates"].iloc[0])
        jitter = np.array([0.01 if i % 2 else -0.01 for i in range(len(rows))])
        if method == "sft":
            jitter = 0 * jitter
        out.append(
            pd.DataFrame(
                {
                    "method": method,
                    "post_id": rows["post_id"].to_numpy(),
                    "target_name": rows["target_name"].to_numpy(),
                    "target_reward": rows["target_reward"].to_numpy(),
                    "estimator": "best_of_n_beirami" if bon else "monte_carlo",
                    "n_samples": 2,
                    "kl": [KL_OF[(method, t)] for t in rows["target_name"]] + jitter,
                    "kl_k3": np.nan,
                    "kl_bound": np.log(n) - (n - 1) / n if bon else np.nan,
                    "logp_policy": np.nan,
                    "logp_sft": -5.0,
                    "mean_tokens": 6.0,
                    "n_finished": 1,
                    "n_unsupported": 0,
                }
            )
        )
    return out


def with_rloo_and_bon(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """`make_world`'s frames plus `rloo` (RM reward 1.0, gold 0.2: it over-optimises) and
    `bon4` (RM 0.6, gold 0.45), both baselines built from sft's rows."""
    sft = frames[2]
    rloo = sft.assign(method="rloo", reward=sft["reward"] + 0.8, gold=sft["gold"] - 0.2)
    bon = sft.assign(method="bon4", reward=sft["reward"] + 0.4, gold=sft["gold"] + 0.05,
                     n_candidates=4)  # fmt: skip
    return [*frames, rloo, bon]


#: The judges of `judged_world` ({name: kind}).
JUDGES = {"gold": "gold", "deberta": "reward_model", "gpt": "llm"}
#: The demo's judges: the world's gold function, the main judge.
GOLD_JUDGE = {"gold": "gold"}


def judged_world(frames, references):
    """The judged files (rules `judge`, `judge_references`) of evaluated `frames`: gold = the
    evaluated gold column; deberta scores a row post index + sample, the references 5.0; gpt's
    verdict is 1 for sample 0, 0.5 for sample 1, NaN (malformed) at (p0, sample 1)."""
    judged = []
    for frame in frames:
        part = frame[list(ROW_KEYS)].copy()
        index = frame["post_id"].map({post_id: i for i, post_id in enumerate(POST_IDS)})
        part["judge_gold"] = frame["gold"]
        part["judge_deberta"] = (index + frame["sample"]).astype(float)
        verdict = np.where(frame["sample"] == 0, 1.0, 0.5)
        verdict[((frame["post_id"] == "p0") & (frame["sample"] == 1)).to_numpy()] = np.nan
        part["judge_gpt"] = verdict
        judged.append(part)
    judged_references = pd.DataFrame(
        {
            "post_id": references["post_id"],
            "judge_gold": references["gold"],
            "judge_deberta": 5.0,
            "judge_gpt": 0.5,
        }
    )
    return judged, judged_references


def gold_judged(frame, frames, references):
    """`combine`'s `frame` with the gold judge's columns (`attach_judges`, `GOLD_JUDGE`)."""
    return attach_judges(frame, *judged_world(frames, references), GOLD_JUDGE)


def write_judged(directory, frames, references, judged=None):
    """The judged files of `frames` (`judged_world`'s, or `judged` = (parts, references)) and a
    judges.csv under `directory`; returns publish's keyword arguments for them."""
    parts, judged_references = judged or judged_world(frames, references)
    paths = []
    for part in parts:
        paths.append(directory / "judged" / f"{part['method'].iloc[0]}.parquet")
        write_parquet(paths[-1], part)
    write_parquet(directory / "judged" / "references.parquet", judged_references)
    names = [c.removeprefix("judge_") for c in judged_references.columns if c != "post_id"]
    pd.DataFrame(
        {"judge": ["proxy", *names], "kind": "x", "model": "m", "split": "valid2", "n": 40,
         "n_unjudged": 0, "agreement": 0.7, "ci_low": 0.6, "ci_high": 0.8, "source": ""}
    ).to_csv(directory / "judges.csv", index=False)  # fmt: skip
    return {
        "judged": paths,
        "judged_references": directory / "judged" / "references.parquet",
        "judges_table": directory / "judges.csv",
    }

"""A small evaluated world for the evaluation/report tests: 2 conditioned methods x 3 targets
(two in range) + 1 baseline, 8 prompts, 2 samples each; numbers chosen so the answers are known."""

import json

import numpy as np
import pandas as pd

from rewardcond.evaluation.targets import Target

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

"""`text`: the reward written in the prompt (Rewards-in-Context, SteerLM, OpenRLHF conditional SFT).

The scaled reward goes on its own line in front of the prompt, e.g. `REWARD: 1.25`, at a fixed
precision. Same rows, scaler and targets as `scalar`: the two differ only in how the reward gets
in (a learned embedding slot versus digits the tokenizer reads).
"""

from __future__ import annotations


def reward_line(scaled_reward: float, precision: int) -> str:
    """`REWARD: <value>\\n` with `precision` decimals; a value that rounds to zero reads `0.00`."""
    text = f"{scaled_reward:.{precision}f}"
    if float(text) == 0.0:
        text = f"{0.0:.{precision}f}"
    return f"REWARD: {text}\n"

"""Loss curves of the Trainer-based training stages (the policies and the reward model)."""

from __future__ import annotations

import pandas as pd


def loss_curve(log_history: list[dict], metrics: tuple[str, ...] = ()) -> pd.DataFrame:
    """The logged training steps of a Trainer's `log_history` (step, epoch, loss, lr, grad norm,
    then the logged `metrics` a method names)."""
    columns = ["step", "epoch", "loss", "learning_rate", "grad_norm", *metrics]
    rows = [{c: entry.get(c) for c in columns} for entry in log_history if "loss" in entry]
    return pd.DataFrame(rows, columns=columns)


def plot_loss(
    curve: pd.DataFrame, path, *, title: str, ylabel: str = "training loss (nats/token)"
) -> None:
    """Training loss against optimizer step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["step"], curve["loss"], marker="." if len(curve) < 50 else None)
    ax.set(xlabel="optimizer step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

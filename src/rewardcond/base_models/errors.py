"""Errors of the base-model stage, with the offline alternative spelled out."""

from rewardcond import DEMO_COMMAND

OFFLINE_DEMO_HINT = (
    f"This source needs the network; the offline synthetic demo needs none: {DEMO_COMMAND}"
)


class SourceUnavailableError(RuntimeError):
    """A real (networked) source of a base model could not be reached."""

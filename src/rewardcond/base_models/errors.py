"""Errors of the base-model stage, with the offline alternative spelled out."""

OFFLINE_DEMO_HINT = (
    "This source needs the network; the offline synthetic demo needs none: "
    "snakemake --cores 2 --configfile workflow/config/demo.yaml"
)


class SourceUnavailableError(RuntimeError):
    """A real (networked) source of a base model could not be reached."""

"""Rule download_hub_model: one hub model at its pinned revision into data/hub_models/<name>/."""

from rewardcond.artifacts import log_to_file
from rewardcond.hub import materialise_hub_model

log_to_file(snakemake.log[0])
materialise_hub_model(
    snakemake.params.spec["hub_id"],
    snakemake.params.spec["revision"],
    snakemake.output[0],
    what=f"hub model {snakemake.wildcards.name}",
)

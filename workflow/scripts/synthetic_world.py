"""Rule synthetic_world: write the synthetic TL;DR world into data/raw/synthetic/."""

from pathlib import Path

from rewardcond.artifacts import log_to_file
from rewardcond.data.synthetic import WorldConfig, generate_world

log_to_file(snakemake.log[0])
generate_world(
    Path(snakemake.output.manifest).parent,
    WorldConfig(**snakemake.params.world),
    seed=snakemake.params.seed,
)

"""Snakemake adapter: join the generate_summaries shards of one method (rule merge_generations)."""

from rewardcond.artifacts import log_to_file
from rewardcond.distributed import merge_generation_shards

log_to_file(snakemake.log[0])
merge_generation_shards(snakemake.input.shards, snakemake.output[0])

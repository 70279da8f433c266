"""Snakemake adapter: join the score_completions shards (rule merge_scored_completions)."""

from rewardcond.artifacts import log_to_file
from rewardcond.reward_models.completions import merge_scored_shards

log_to_file(snakemake.log[0])
merge_scored_shards(
    shard_paths=snakemake.input.scored,
    report_paths=snakemake.input.reports,
    output_path=snakemake.output.scored,
    report_path=snakemake.output.report,
)

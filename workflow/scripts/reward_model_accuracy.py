"""Snakemake adapter: reward-model accuracy on valid2/valid1 (rule reward_model_accuracy)."""

from rewardcond.artifacts import log_to_file
from rewardcond.reward_models.accuracy import measure_accuracy

log_to_file(snakemake.log[0])
measure_accuracy(
    comparisons_path=snakemake.input.comparisons,
    scored_path=snakemake.input.scored,
    data_report_path=snakemake.input.data_report,
    csv_path=snakemake.output.csv,
    md_path=snakemake.output.md,
    samples=snakemake.params.samples,
    seed=snakemake.params.seed,
)

"""Rule examples: every evaluated generation with its proxy reward and judges' values."""

from rewardcond.artifacts import log_to_file
from rewardcond.judges.examples import run_examples

log_to_file(snakemake.log[0])
run_examples(
    evaluated=snakemake.input.evaluated,
    judged=snakemake.input.judged,
    parquet_path=snakemake.output.parquet,
    csv_path=snakemake.output.csv,
)

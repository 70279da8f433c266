from rewardcond.artifacts import log_to_file
from rewardcond.trainset import pool_fraction

log_to_file(snakemake.log[0])
pool_fraction(
    snakemake.input.trainset,
    percent=int(snakemake.wildcards.percent),
    seed=snakemake.params.seed,
    output_path=snakemake.output.trainset,
    report_path=snakemake.output.report,
)

"""Rule score_references: the reference summaries of the eval prompts, scored like generations."""

from rewardcond.artifacts import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from rewardcond.evaluation import run_score_references  # noqa: E402

run_score_references(
    prompts=snakemake.input.prompts,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    scorer_args=dict(snakemake.params.scorer),  # noqa: F821
    gold_path=snakemake.input.gold or None,  # noqa: F821
)

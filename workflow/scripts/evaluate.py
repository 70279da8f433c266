"""Rule evaluate: reward-model score, gold and ROUGE for one method's generations."""

from rewardcond.artifacts import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from rewardcond.evaluation import run_evaluate  # noqa: E402

run_evaluate(
    generations=snakemake.input.generations,  # noqa: F821
    prompts=snakemake.input.prompts,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
    scorer_args=dict(snakemake.params.scorer),  # noqa: F821
    gold_path=snakemake.input.gold or None,  # noqa: F821
    use_stemmer=snakemake.params.use_stemmer,  # noqa: F821
)

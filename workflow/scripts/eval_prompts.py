from rewardcond.artifacts import log_to_file
from rewardcond.trainset import draw_eval_prompts

log_to_file(snakemake.log[0])
draw_eval_prompts(
    snakemake.input.posts,
    n=snakemake.params.n,
    seed=snakemake.params.seed,
    output_path=snakemake.output[0],
)

from rewardcond.artifacts import log_to_file
from rewardcond.trainset import TrainsetSettings, build_targets

log_to_file(snakemake.log[0])
build_targets(
    scored_path=snakemake.input.scored,
    posts_path=snakemake.input.posts,
    base_path=snakemake.input.base,
    template=snakemake.params.template,
    settings=TrainsetSettings(**snakemake.params.settings),
    quantiles=snakemake.params.quantiles,
    beyond_max_sd=snakemake.params.beyond_max_sd,
    output_path=snakemake.output[0],
)

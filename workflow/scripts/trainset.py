from rewardcond.artifacts import log_to_file
from rewardcond.methods import get_method
from rewardcond.trainset import TrainsetSettings, build_trainset

log_to_file(snakemake.log[0])
build_trainset(
    get_method(snakemake.wildcards.method, snakemake.params.method_options),
    scored_path=snakemake.input.completions,
    posts_path=snakemake.input.posts,
    comparisons_path=snakemake.input.comparisons,
    base_path=snakemake.input.base,
    template=snakemake.params.template,
    settings=TrainsetSettings(**snakemake.params.settings),
    seed=snakemake.params.seed,
    output_path=snakemake.output.trainset,
    report_path=snakemake.output.report,
)

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.generate import GenerateSettings, generate_method
from rewardcond.methods import get_method
from rewardcond.scoring import load_scorer

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
generate_method(
    get_method(snakemake.wildcards.method, snakemake.params.method_options),
    model_path=snakemake.input.model,
    prompts_path=snakemake.input.prompts,
    targets_path=snakemake.input.targets,
    output_path=snakemake.output[0],
    template=snakemake.params.template,
    settings=GenerateSettings(**snakemake.params.settings),
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    scorer=load_scorer(
        **snakemake.params.scorer,
        device=snakemake.params.device,
        batch_tokens=snakemake.params.batch_tokens,
        on_empty=snakemake.params.on_empty,
    ),
)

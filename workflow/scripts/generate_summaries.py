"""Rules generate_summaries and generate_best_of_n: one method's summaries of the eval prompts.

generate_summaries runs one shard of the prompts (`{scatteritem}`); generate_best_of_n runs them
all at once and passes the reward model (params `scorer`) for best-of-N to pick with.
"""

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.distributed import shard_device
from rewardcond.methods import get_method
from rewardcond.reward_models.scoring import load_scorer
from rewardcond.summaries import GenerateSettings, generate_method

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
shard = snakemake.wildcards.get("scatteritem", "1-of-1")
device = shard_device(snakemake.params.device, shard)
scorer = snakemake.params.get("scorer")
if scorer is not None:
    scorer = load_scorer(
        **scorer,
        device=device,
        batch_tokens=snakemake.params.batch_tokens,
        on_empty=snakemake.params.on_empty,
    )
generate_method(
    get_method(snakemake.wildcards.method, snakemake.params.method_options),
    model_path=snakemake.input.model,
    prompts_path=snakemake.input.prompts,
    targets_path=snakemake.input.targets,
    output_path=snakemake.output[0],
    template=snakemake.params.template,
    settings=GenerateSettings(**snakemake.params.settings),
    seed=snakemake.params.seed,
    device=device,
    shard=shard,
    scorer=scorer,
)

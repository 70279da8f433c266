"""Rules kl and kl_best_of_n: per-prompt KL(pi || pi_sft) of one method at each condition."""

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.kl.stage import run_best_of_n_kl, run_kl
from rewardcond.methods import get_method
from rewardcond.summaries import GenerateSettings

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
method = get_method(snakemake.wildcards.method, snakemake.params.method_options)
if snakemake.rule == "kl_best_of_n":
    run_best_of_n_kl(
        method,
        generations_path=snakemake.input.generations,
        sft_path=snakemake.input.sft,
        prompts_path=snakemake.input.prompts,
        output_path=snakemake.output[0],
        template=snakemake.params.template,
        settings=GenerateSettings(**snakemake.params.settings),
        device=snakemake.params.device,
    )
else:
    run_kl(
        method,
        model_path=snakemake.input.model,
        sft_path=snakemake.input.sft,
        prompts_path=snakemake.input.prompts,
        targets_path=snakemake.input.targets,
        output_path=snakemake.output[0],
        template=snakemake.params.template,
        settings=GenerateSettings(**snakemake.params.settings),
        samples=snakemake.params.samples,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
    )

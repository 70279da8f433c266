"""Rule score_references: the reference summaries of the eval prompts, scored like generations."""

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.evaluation.generations import run_score_references

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
run_score_references(
    prompts=snakemake.input.prompts,
    output=snakemake.output[0],
    scorer_args={
        **snakemake.params.scorer,
        "device": snakemake.params.device,
        "batch_tokens": snakemake.params.batch_tokens,
    },
    gold_path=snakemake.input.gold or None,
)

"""Snakemake adapter: score every completion with the reward model (rule score_completions)."""

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.distributed import shard_device
from rewardcond.reward_models.completions import score_completions
from rewardcond.reward_models.scoring import load_scorer

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
scorer = load_scorer(
    **snakemake.params.scorer,
    device=shard_device(snakemake.params.device, snakemake.wildcards.scatteritem),
    batch_tokens=snakemake.params.batch_tokens,
    on_empty=snakemake.params.on_empty,
    cnndm_template=snakemake.params.cnndm_template,
)
score_completions(
    completions_path=snakemake.input.completions,
    posts_path=snakemake.input.posts,
    output_path=snakemake.output.scored,
    report_path=snakemake.output.report,
    scorer=scorer,
    shard=snakemake.wildcards.scatteritem,
)

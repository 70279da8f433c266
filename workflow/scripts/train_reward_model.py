"""Snakemake adapter: train the reward model on the comparisons (rule train_reward_model)."""

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.reward_models.training import build_trained_reward_model

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
build_trained_reward_model(
    comparisons_path=snakemake.input.comparisons,
    posts_path=snakemake.input.posts,
    base_path=snakemake.input.base,
    output_dir=snakemake.output.model,
    template=snakemake.params.template,
    params=dict(snakemake.params.train),
    seed=snakemake.params.seed,
    device=snakemake.params.device,
)

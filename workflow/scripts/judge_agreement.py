"""Rule judge_agreement: each judge's agreement with the human labels on valid2 (judges.csv)."""

from rewardcond.artifacts import log_to_file
from rewardcond.judges.stage import run_judge_agreement
from rewardcond.stats import BootstrapSettings

log_to_file(snakemake.log[0])
params = snakemake.params
# Only a reward-model judge runs a model: a gold or llm judge job does not import torch (seconds
# of start-up per job).
if any(judge["kind"] == "reward_model" for judge in params.judges):
    import torch

    torch.set_num_threads(snakemake.threads)
run_judge_agreement(
    comparisons_path=snakemake.input.comparisons,
    posts_path=snakemake.input.posts,
    accuracy_path=snakemake.input.accuracy,
    csv_path=snakemake.output.csv,
    md_path=snakemake.output.md,
    judges=params.judges,
    identities=params.identities,
    max_comparisons=params.max_comparisons,
    device=params.device,
    bootstrap=BootstrapSettings(
        n_resamples=params.n_resamples, level=params.level, seed=params.seed
    ),
)

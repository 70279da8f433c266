"""Rules judge and judge_references: every row judged by every judge of evaluate.judges."""

from rewardcond.artifacts import log_to_file
from rewardcond.judges.stage import run_judge
from rewardcond.stats import BootstrapSettings

log_to_file(snakemake.log[0])
params = snakemake.params
# Only a reward-model judge runs a model: a gold or llm judge job does not import torch (seconds
# of start-up per job).
if any(judge["kind"] == "reward_model" for judge in params.judges):
    import torch

    torch.set_num_threads(snakemake.threads)
run_judge(
    rows_path=snakemake.input.get("rows"),
    prompts_path=snakemake.input.prompts,
    output=snakemake.output.judged,
    summaries=dict(zip(params.llm_judges, snakemake.output.summaries, strict=True)),
    judges=params.judges,
    device=params.device,
    bootstrap=BootstrapSettings(
        n_resamples=params.n_resamples, level=params.level, seed=params.seed
    )
    if params.llm_judges
    else None,
)

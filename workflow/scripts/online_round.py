"""Rule online_round: round r's pool of a conditioned method from round r - 1's model and pool."""

import torch

from rewardcond.artifacts import log_to_file, resolve_device
from rewardcond.methods import get_method
from rewardcond.reward_models.scoring import load_scorer
from rewardcond.rounds import OnlineSettings, run_round

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
run_round(
    get_method(snakemake.wildcards.method, snakemake.params.method_options),
    model_path=snakemake.input.model,
    pool_path=snakemake.input.pool,
    settings=OnlineSettings(**snakemake.params.settings),
    scorer=load_scorer(
        **snakemake.params.scorer,
        device=device,
        batch_tokens=snakemake.params.batch_tokens,
        on_empty=snakemake.params.on_empty,
        progress=False,
    ),
    seed=snakemake.params.seed,
    round_number=int(snakemake.wildcards.round),
    samples_path=snakemake.output.samples,
    output_path=snakemake.output.trainset,
    report_path=snakemake.output.report,
    device=device,
)

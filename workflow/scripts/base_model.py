"""Rule base_model: materialise one configured base model under data/models/<name>/."""

from rewardcond.artifacts import log_to_file

log_to_file(snakemake.log[0])

import torch  # noqa: E402

from rewardcond.base_models import materialise_base_model  # noqa: E402

torch.set_num_threads(snakemake.threads)
materialise_base_model(
    snakemake.wildcards.name,
    snakemake.params.spec,
    snakemake.output[0],
    seed=snakemake.params.seed,
    template=snakemake.params.template,
    posts=snakemake.input.get("posts"),
    completions=snakemake.input.get("completions"),
    device=snakemake.params.device,
)

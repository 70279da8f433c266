"""Rule evaluate: reward-model score, gold and ROUGE for one method's generations."""

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.evaluation.generations import run_evaluate

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
run_evaluate(
    generations=snakemake.input.generations,
    prompts=snakemake.input.prompts,
    output=snakemake.output[0],
    scorer_args={
        **snakemake.params.scorer,
        "device": snakemake.params.device,
        "batch_tokens": snakemake.params.batch_tokens,
        "on_empty": snakemake.params.on_empty,
    },
    gold_path=snakemake.input.gold or None,
    use_stemmer=snakemake.params.use_stemmer,
)

import torch

from rewardcond.artifacts import log_to_file
from rewardcond.methods import get_method
from rewardcond.train import TrainSettings, train_method

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
train_method(
    get_method(snakemake.wildcards.method, snakemake.params.method_options),
    trainset_path=snakemake.input.trainset,
    base_path=snakemake.input.base,
    output_dir=snakemake.output[0],
    checkpoint_dir=snakemake.params.checkpoints,
    settings=TrainSettings(**snakemake.params.settings),
    seed=snakemake.params.seed,
    device=snakemake.params.device,
)

"""rewardcond: reward-conditioned causal language models and the TL;DR experiment around them.

Importing the package is cheap (no torch, no transformers), so that light jobs (downloads,
merges) stay light. The model lives in `rewardcond.modeling`: importing it registers
`RewardConditionedConfig` / `RewardConditionedLM` with `AutoConfig` / `AutoModelForCausalLM`;
the pipeline stages live in their own modules.
"""

__version__ = "0.1.0"

#: The offline demo, named by every error about a source that needs the network.
DEMO_COMMAND = "snakemake --cores 2 --configfile workflow/config/demo.yaml"

__all__ = ["DEMO_COMMAND", "__version__"]

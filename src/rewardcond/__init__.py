"""rewardcond: reward-conditioned causal language models and the TL;DR experiment around them.

Importing the package registers `RewardConditionedConfig` / `RewardConditionedLM` with
`AutoConfig` / `AutoModelForCausalLM`; the pipeline stages live in their own modules.
"""

from rewardcond.modeling import RewardConditionedConfig, RewardConditionedLM

__version__ = "0.1.0"

__all__ = ["RewardConditionedConfig", "RewardConditionedLM", "__version__"]

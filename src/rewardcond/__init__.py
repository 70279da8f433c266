"""rewardcond: reward-conditioned causal language models and the TL;DR experiment around them."""

__version__ = "0.1.0"

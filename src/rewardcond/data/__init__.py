"""The data stage: download OpenAI's TL;DR feedback data or generate a synthetic world, then
validate and prepare both into the same Parquet tables."""

from rewardcond.data.prepare import BadRecordError, prepare
from rewardcond.data.synthetic import GoldReward, WorldConfig, generate_world

__all__ = ["BadRecordError", "GoldReward", "WorldConfig", "generate_world", "prepare"]

"""The data stage: download OpenAI's TL;DR feedback data (`rewardcond.data.download`) or generate
a synthetic world with a known gold reward (`rewardcond.data.synthetic`), then validate and
prepare either into the same Parquet tables (`rewardcond.data.prepare`)."""

"""Reward models: the one trained here and pretrained ones from the hub, and what is done with
them. Modules read bottom-up:

- `model`: the trained reward model (`RewardModelConfig`, `RewardModel`, the pairwise loss);
- `inputs`: (post, summary) -> token ids, post shortened to fit; length-bucketed batches;
- `scoring`: `RewardModelScorer` and `load_scorer`, for either kind of reward model;
- `completions`: the `score_completions` stage and the merge of its shards;
- `training`: the `train_reward_model` stage on the HF Trainer (training, resumable and under
  `accelerate launch`; normalising to the references);
- `accuracy`: the `reward_model_accuracy` stage (accuracy on held-out comparisons).
"""

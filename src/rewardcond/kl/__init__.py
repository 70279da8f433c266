"""KL divergence of a method's policy from the starting policy `sft`, in nats per sequence.

The field compares alignment methods on reward *at a given distance from the starting policy*
(Gao, Schulman and Hilton 2022, "Scaling laws for reward model overoptimization", who plot gold
reward against d = sqrt(KL(pi || pi_init))). This package estimates that distance for every
method and condition on the evaluation prompts:

- `logprobs.completion_logprobs`: log pi(y | x) of completions under a causal LM, summed over the
  completion's tokens and its EOS (when it has one), the prompt not counted; for a
  `RewardConditionedLM` at a given target reward (its slot), for a plain LM as it is.
- `estimators.sample_log_ratios`, `per_prompt_kl`: the Monte Carlo estimate of KL(pi || pi_sft)
  from the policy's own samples (see `per_prompt_kl` for what it is, its unit, bias, variance).
- `estimators.best_of_n_kl_bound`, `best_of_n_kl_estimate`: best-of-N, which has no model of its
  own: the analytic `log N - (N - 1)/N` (an upper bound) and the estimator of Beirami et al. 2024.
- `estimators.exact_sequence_kl`: the exact KL by enumerating every sequence, for tiny
  vocabularies (tests).
- `stage.run_kl`, `run_best_of_n_kl`: the stage (rule `kl`): a parquet of per-prompt KL per
  condition; `summary.summarize_kl` (light: numpy and pandas, for `publish`) gives the mean and a
  bootstrap interval over prompts per method and condition.

How each method sees its prompt is how it generates (`rewardcond.summaries.generate_method`): the
same rendered (truncated) prompt, after the condition's prefix for `tokens` (`<|good|>`) and
`text` (`REWARD: ...`), with the target in the reward slot for `scalar`; `sft`, `dpo` and other
plain methods get the prompt alone. pi_sft always sees the plain prompt: the KL is between the
two policies' distributions of completions of the same post. Both are distributions over token
sequences, so both models must share their tokenizer's ids (checked); a token the policy can
emit and sft cannot (e.g. `tokens`' `<|good|>` in a completion) has log pi_sft = -inf, which
makes that prompt's KL infinite; such samples are counted (`n_unsupported`).

What is measured is the policy's own distribution (temperature 1, top_p 1), as Gao et al.
measure their policies, whatever `generate` decodes with for the tables (greedy in the shipped
configs): a greedy decoder is a point mass, whose KL from sft would be -log pi_sft of its one
output, and is not what this estimates. Best-of-N samples at temperature 1 in both.
"""

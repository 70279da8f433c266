"""Judges the policy never saw (issue 17 §1, §3): every generated and reference summary scored
by each configured judge, each judge's agreement with the human labels, and the per-example
release.

A judge (config `evaluate.judges`, one entry each) has a `name` and a `kind`:
- `gold`: the synthetic world's gold function (`rewardcond.data.synthetic.GoldReward`), a
  score per summary;
- `reward_model`: a pretrained hub reward model at a pinned revision, scored exactly as the
  proxy is (`rewardcond.reward_models.scoring.load_scorer`: length-bucketed batches, a pair
  encoder such as DeBERTa or a decoder with a scalar head reading prompt + summary + EOS), a
  score per summary;
- `llm`: the pairwise LLM judge of `rewardcond.llm_judge` against the human reference, a
  verdict per generated summary: 1 (better than the reference in both orders), 0.5 (the orders
  disagree, or the summary is the reference), 0 (worse in both), NaN (a malformed answer).

Each judge's column is `judge_<name>`. Modules: `scoring` (the judges' per-row scores), `agreement`
(agreement with the human labels on the valid2 comparisons, `tables/judges.csv`), `examples`
(`tables/examples.parquet`) and `stage` (the rules' file I/O).
"""

JUDGE_PREFIX = "judge_"
#: Columns keying a judged generation (as the evaluated rows).
ROW_KEYS = ("method", "post_id", "target_name", "sample")


def judge_column(name: str) -> str:
    """The column of judge `name`: `judge_<name>`."""
    return f"{JUDGE_PREFIX}{name}"

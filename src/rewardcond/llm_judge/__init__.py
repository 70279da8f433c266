"""A pairwise LLM judge of TL;DR summaries against the human reference, as the field uses it.

Protocol (Rafailov et al. 2023, "Direct Preference Optimization", arXiv:2305.18290, Appendix
C.2, the GPT-4 TL;DR win-rate prompt): the judge sees the post and two summaries, writes a
one-sentence comparison and then `Preferred: A` or `Preferred: B` (`TLDR_PAIRWISE_PROMPT`: the
paper's wording, with a blank line between its blocks; the post is filled in as `post_template`
says, the summaries stripped of outer whitespace). The paper drew the order at random
per comparison; here **both orders are asked** (position swap): the generated summary first as
A, then as B. A generated summary wins (verdict 1) when both orders prefer it, loses (0) when
both prefer the reference, and ties (0.5) when the orders disagree, i.e. the judge preferred a
position, not a summary; `disagreement_share` reports how often that happened. An answer with
no parsable `Preferred:` line is **malformed**: its row is kept in the verdicts with verdict
NaN, counted (`n_malformed`) and left out of the win rates. A generated summary identical to the
reference is a tie without asking (`n_identical`).

Statistics per (method, target_name), over the rows with a verdict:
- `win_rate`: mean verdict (ties count 0.5) with a percentile bootstrap interval that resamples
  prompts (`rewardcond.stats.bootstrap_ci` with post ids as groups);
- `lc_win_rate`: the length-controlled win rate, after AlpacaEval 2 (Dubois et al. 2024,
  "Length-Controlled AlpacaEval", arXiv:2404.04475): a logistic regression of the verdict on the
  normalised length difference `tanh(d / sd(d))`, `d` = characters of the generated summary
  minus the reference's (AlpacaEval's feature), predicted at `d = 0`, i.e. `sigmoid(intercept)`.
  Ties enter as the fractional outcome 0.5 (the same as a half-weight win plus a half-weight
  loss, which is how AlpacaEval fits its preferences in [0, 1]); the fit is Newton's method
  (IRLS) with an L2 penalty `lc_l2_penalty` on the slope only, which keeps it finite when length
  separates the verdicts perfectly. Its interval comes from the same prompt bootstrap.

Cost and robustness: every request is cached on disk, one JSON file per key, the key being a
sha256 of (judge model, the full request: prompt text and sampling parameters); a file is
written atomically once its answer arrived (malformed answers too: they were paid for), so a
rerun, or a run resumed after a kill, pays nothing twice. Requests run in a thread pool of
`concurrency`; 429, 408, 409, 5xx, time-outs (`timeout_s`) and lost connections are retried up
to `max_retries` times after `backoff_initial_s * 2**k` seconds (at most `backoff_max_s`); other
errors (401, 400, 404) stop at once. Tokens (prompt, completion) come from the endpoint's
`usage`; cost = tokens x configured USD price per million tokens.

The API key is read from the environment variable named by `api_key_env` and goes nowhere but
the Authorization header: not into the cache, the verdicts, the summary, logs or errors.

Modules: `protocol` (the prompt, the settings, parsing answers into verdicts), `client` (requests,
retries and the on-disk cache), `win_rates` (win rate and length-controlled win rate with their
intervals) and `stage` (a table of generations judged, with its summary).
"""

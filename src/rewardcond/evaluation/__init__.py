"""Evaluating generations: achieved and gold reward, ROUGE, length, diversity, and the tables.

Per method, `generations.evaluate_generations` adds the reward-model score (`reward`), the gold
reward where the world has one (`gold`, NaN otherwise) and ROUGE-1/2/L against the reference to
each generated summary (`metrics`); `generations.evaluate_references` scores the human
references of the same prompts. Across methods, `summary` (combine, summarize, win rates) and
`comparisons` (Spearman correlations, paired differences between methods) turn those rows into
the published tables, with bootstrap confidence intervals that resample *prompts*
(`rewardcond.stats`).

Conditioned methods have targets (`target_name` from targets.json, `targets`); baselines
generated once, with `target_name == "none"` (`rewardcond.tables.NO_TARGET`). Which is which is
read from the generations, not from config.
"""

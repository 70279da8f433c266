"""Publishing the evaluation: tables (CSV + Markdown), plots (PNG) and REPORT.md with a verdict.

Layout under `results/<run>/`:
- `tables/summary.*`: one row per method x target (a baseline has one row, target `none`);
- `tables/correlation.*`: one row per conditioned method, Spearman over its in-range targets;
- `tables/winrate.*`: one row per method at its headline target (the in-range target with the
  highest mean reward-model score; `none` for a baseline), with cost columns; the win rate at
  every target is in `summary`;
- `tables/comparisons.*`: paired bootstrap differences behind the verdict;
- `plots/*.png` and `REPORT.md`.

The verdict is computed from these tables (`verdict.verdict_lines`); nothing in it is
hand-written. `plots` draws the figures; `render` writes the tables and REPORT.md (`publish`,
the rule of the same name).
"""

"""Rule publish: tables, plots and REPORT.md from every method's evaluated generations and KL."""

from pathlib import Path

from rewardcond.artifacts import log_to_file
from rewardcond.evaluation.collapses import CollapseRule
from rewardcond.report.render import publish

log_to_file(snakemake.log[0])
publish(
    evaluated=snakemake.input.evaluated,
    references=snakemake.input.references,
    targets=snakemake.input.targets,
    kl=snakemake.input.kl,
    results=Path(snakemake.output.report_md).parent,  # results/<run>/
    benchmarks=snakemake.params.benchmarks,
    data_files={
        "posts": snakemake.input.posts,
        "comparisons": snakemake.input.comparisons,
        "eval prompts": snakemake.input.prompts,
    },
    setup=dict(snakemake.params.setup),
    n_resamples=snakemake.params.n_resamples,
    level=snakemake.params.level,
    seed=snakemake.params.seed,
    main_method=snakemake.params.main_method,
    judges=dict(snakemake.params.judges),
    main_judge=snakemake.params.main_judge,
    judged=snakemake.input.judged,
    judged_references=snakemake.input.judged_references or None,
    judges_table=snakemake.input.judges_table or None,
    round_reports=snakemake.input.rounds,
    policy_samples=snakemake.params.policy_samples,
    collapse=CollapseRule(snakemake.params.min_eos_rate, snakemake.params.judge_margin),
    # {trainset name: report}: `scalar-f30` for scalar-f30 and its seeds' replicates.
    trainset_reports={Path(path).stem: path for path in snakemake.input.trainsets},
)

"""Rule publish: tables, plots and REPORT.md from every method's evaluated generations."""

from pathlib import Path

from rewardcond.artifacts import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from rewardcond.report import publish  # noqa: E402

publish(
    evaluated=list(snakemake.input.evaluated),  # noqa: F821
    references=snakemake.input.references,  # noqa: F821
    targets=snakemake.input.targets,  # noqa: F821
    results=Path(snakemake.output.report_md).parent,  # noqa: F821 - results/<run>/
    benchmarks=snakemake.params.benchmarks,  # noqa: F821
    data_files={
        "posts": snakemake.input.posts,  # noqa: F821
        "comparisons": snakemake.input.comparisons,  # noqa: F821
        "eval prompts": snakemake.input.prompts,  # noqa: F821
    },
    setup=dict(snakemake.params.setup),  # noqa: F821
    n_resamples=snakemake.params.n_resamples,  # noqa: F821
    level=snakemake.params.level,  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
    main_method=snakemake.params.main_method,  # noqa: F821
)

# Evaluate and publish (issue 5 sections 4-5, issue 9): score every method's generations and the
# reference summaries with the reward model (and gold where the world has one), then write the
# tables, plots and REPORT.md under results/<run>/.


rule evaluate:
    input:
        unpack(reward_model_input),
        generations=f"{RESULTS}/generations/{{method}}.parquet",
        prompts=f"{RESULTS}/eval_prompts.parquet",
        gold=gold_reward_file(),
        # The ROUGE metric script, which `evaluate` loads by its path, not by an import.
        rouge="src/rewardcond/metrics/rouge/rouge.py",
        library=library("evaluate.py"),
    output:
        f"{RESULTS}/evaluated/{{method}}.parquet",
    params:
        scorer=reward_model_scorer_params(),
        batch_tokens=lookup(dpath="reward_model/batch_tokens", within=config),
        on_empty=lookup(dpath="evaluate/on_empty", within=config),
        device=lookup(dpath="device", within=config),
        use_stemmer=lookup(dpath="evaluate/rouge_use_stemmer", within=config),
    # Threads per rule, not the cores of one machine (on a cluster there is none to count): one, as
    # the other rules; a cluster profile sets its own (`set-threads`), the job's --cpus-per-task.
    threads: 1
    resources:
        gpu=gpus(),
    priority: stage_priority("evaluate")
    log:
        "logs/evaluate/{method}.log",
    benchmark:
        "benchmarks/evaluate/{method}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/evaluate.py"


rule score_references:
    input:
        unpack(reward_model_input),
        prompts=f"{RESULTS}/eval_prompts.parquet",
        gold=gold_reward_file(),
        library=library("score_references.py"),
    output:
        f"{RESULTS}/evaluated/references.parquet",
    params:
        scorer=reward_model_scorer_params(),
        batch_tokens=lookup(dpath="reward_model/batch_tokens", within=config),
        device=lookup(dpath="device", within=config),
    # Threads per rule, not the cores of one machine (on a cluster there is none to count): one, as
    # the other rules; a cluster profile sets its own (`set-threads`), the job's --cpus-per-task.
    threads: 1
    resources:
        gpu=gpus(),
    log:
        f"logs/score_references/{RUN}.log",
    benchmark:
        f"benchmarks/score_references/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/score_references.py"


rule publish:
    input:
        evaluated=expand(f"{RESULTS}/evaluated/{{method}}.parquet", method=EVALUATED),
        references=f"{RESULTS}/evaluated/references.parquet",
        targets=f"{RESULTS}/targets.json",
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        comparisons=f"data/prepared/{SOURCE}/comparisons.parquet",
        prompts=f"{RESULTS}/eval_prompts.parquet",
        kl=expand(f"{RESULTS}/kl/{{method}}.parquet", method=EVALUATED),
        # Each judge's columns and the REPORT's "Judges" section (issue 17 §1), when configured.
        judged=expand(f"{RESULTS}/judged/{{method}}.parquet", method=EVALUATED) if JUDGES else [],
        judged_references=f"{RESULTS}/judged/references.parquet" if JUDGES else [],
        judges_table=f"{RESULTS}/tables/judges.csv" if JUDGES else [],
        # The online rounds' reports (their sample counts): none when train.rounds is 1.
        rounds=round_reports(),
        # The rows each trained model learnt from (their `rows`): the efficiency figure's x axis.
        trainsets=trainset_reports(),
        library=library("publish.py"),
    output:
        summary=report(
            f"{RESULTS}/tables/summary.csv", caption="../report/summary.rst", category="Tables"
        ),
        summary_md=f"{RESULTS}/tables/summary.md",
        correlation=report(
            f"{RESULTS}/tables/correlation.csv",
            caption="../report/correlation.rst",
            category="Tables",
        ),
        correlation_md=f"{RESULTS}/tables/correlation.md",
        winrate=report(
            f"{RESULTS}/tables/winrate.csv", caption="../report/winrate.rst", category="Tables"
        ),
        winrate_md=f"{RESULTS}/tables/winrate.md",
        comparisons=report(
            f"{RESULTS}/tables/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
        ),
        comparisons_md=f"{RESULTS}/tables/comparisons.md",
        matched_kl=report(
            f"{RESULTS}/tables/matched_kl.csv",
            caption="../report/matched_kl.rst",
            category="Tables",
        ),
        matched_kl_md=f"{RESULTS}/tables/matched_kl.md",
        overoptimisation_table=report(
            f"{RESULTS}/tables/overoptimisation.csv",
            caption="../report/overoptimisation_table.rst",
            category="Tables",
        ),
        overoptimisation_md=f"{RESULTS}/tables/overoptimisation.md",
        calibration=report(
            f"{RESULTS}/plots/calibration.png",
            caption="../report/calibration.rst",
            category="Plots",
        ),
        reward_distribution=report(
            f"{RESULTS}/plots/reward_distribution.png",
            caption="../report/reward_distribution.rst",
            category="Plots",
        ),
        overoptimisation=report(
            f"{RESULTS}/plots/overoptimisation.png",
            caption="../report/overoptimisation.rst",
            category="Plots",
        ),
        winrate_plot=report(
            f"{RESULTS}/plots/winrate.png",
            caption="../report/winrate_plot.rst",
            category="Plots",
        ),
        frontier=report(
            f"{RESULTS}/plots/frontier.png",
            caption="../report/frontier.rst",
            category="Plots",
        ),
        # Across training seeds and the seed post's questions (issue 19): written on every run;
        # with one seed per method and no part-pool models the REPORT does not show them.
        replicates=report(
            f"{RESULTS}/tables/replicates.csv",
            caption="../report/replicates.rst",
            category="Tables",
        ),
        replicates_md=f"{RESULTS}/tables/replicates.md",
        seeds=f"{RESULTS}/tables/seeds.csv",
        seed_comparisons=report(
            f"{RESULTS}/tables/seed_comparisons.csv",
            caption="../report/seed_comparisons.rst",
            category="Tables",
        ),
        seed_comparisons_md=f"{RESULTS}/tables/seed_comparisons.md",
        collapses=report(
            f"{RESULTS}/tables/collapses.csv", caption="../report/collapses.rst", category="Tables"
        ),
        collapses_md=f"{RESULTS}/tables/collapses.md",
        extrapolation_table=f"{RESULTS}/tables/extrapolation.csv",
        extrapolation_md=f"{RESULTS}/tables/extrapolation.md",
        efficiency_table=f"{RESULTS}/tables/efficiency.csv",
        efficiency_md=f"{RESULTS}/tables/efficiency.md",
        extrapolation=report(
            f"{RESULTS}/plots/extrapolation.png",
            caption="../report/extrapolation.rst",
            category="Plots",
        ),
        efficiency=report(
            f"{RESULTS}/plots/efficiency.png",
            caption="../report/efficiency.rst",
            category="Plots",
        ),
        report_md=report(
            f"{RESULTS}/REPORT.md", caption="../report/report_md.rst", category="Report"
        ),
    params:
        benchmarks="benchmarks",
        n_resamples=lookup(dpath="evaluate/bootstrap_samples", within=config),
        level=lookup(dpath="evaluate/ci_level", within=config),
        main_method=lookup(dpath="evaluate/main_method", within=config),
        judges={judge["name"]: judge["kind"] for judge in JUDGES},
        # The held-out side of the verdict, comparisons, matched-KL/over-optimisation tables and
        # plots (issue 17 §1); null without judges.
        main_judge=lookup(dpath="evaluate/main_judge", within=config, default=None),
        policy_samples=policy_samples(),
        seed=lookup(dpath="seed", within=config),
        # A replicate is collapsed below this EOS rate, or this far below sft's judge figure.
        min_eos_rate=lookup(dpath="evaluate/collapse/min_eos_rate", within=config),
        judge_margin=lookup(dpath="evaluate/collapse/judge_margin", within=config),
        # The REPORT prints the resolved configuration, so any change to it rewrites the REPORT.
        setup=config,
    log:
        f"logs/publish/{RUN}.log",
    benchmark:
        f"benchmarks/publish/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/publish.py"

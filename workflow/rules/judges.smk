# Judges the policy never saw (issue 17 §1, §3): each judge of evaluate.judges scores (gold,
# reward_model) or judges against the reference (llm) every evaluated generation and every
# reference summary; its agreement with the human labels on valid2 goes into tables/judges.csv;
# tables/examples.parquet releases every example with its proxy reward and judges' values.


rule judge:
    input:
        unpack(judge_inputs),
        rows=f"{RESULTS}/evaluated/{{method}}.parquet",
        prompts=f"{RESULTS}/eval_prompts.parquet",
        library=library("judge.py"),
    output:
        judged=f"{RESULTS}/judged/{{method}}.parquet",
        # Each llm judge's win rates, malformed answers, disagreements, tokens and cost.
        summaries=expand(f"{RESULTS}/judges/{{name}}/{{{{method}}}}.json", name=LLM_JUDGES),
    params:
        judges=judge_specs(),
        llm_judges=LLM_JUDGES,
        device=lookup(dpath="device", within=config),
        # Only an llm judge's win rates have intervals here: without one, changing them reruns
        # no judging.
        n_resamples=judge_bootstrap("bootstrap_samples"),
        level=judge_bootstrap("ci_level"),
        seed=lookup(dpath="seed", within=config),
    threads: 1
    resources:
        gpu=judge_gpus(),
    priority: stage_priority("judge")
    log:
        "logs/judge/{method}.log",
    benchmark:
        "benchmarks/judge/{method}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/judge.py"


rule judge_references:
    input:
        unpack(judge_inputs),
        prompts=f"{RESULTS}/eval_prompts.parquet",
        library=library("judge.py"),
    output:
        judged=f"{RESULTS}/judged/references.parquet",
        summaries=expand(f"{RESULTS}/judges/{{name}}/references.json", name=LLM_JUDGES),
    params:
        judges=judge_specs(),
        llm_judges=LLM_JUDGES,
        device=lookup(dpath="device", within=config),
        n_resamples=judge_bootstrap("bootstrap_samples"),
        level=judge_bootstrap("ci_level"),
        seed=lookup(dpath="seed", within=config),
    threads: 1
    resources:
        gpu=judge_gpus(),
    log:
        f"logs/judge_references/{RUN}.log",
    benchmark:
        f"benchmarks/judge_references/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/judge.py"


rule judge_agreement:
    input:
        unpack(judge_inputs),
        comparisons=f"data/prepared/{SOURCE}/comparisons.parquet",
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        # The proxy's own valid2 accuracy, copied in (not measured twice).
        accuracy=f"{RESULTS}/reward_model/accuracy.csv",
        library=library("judge_agreement.py"),
    output:
        csv=f"{RESULTS}/tables/judges.csv",
        md=f"{RESULTS}/tables/judges.md",
    params:
        judges=judge_specs(),
        identities=judge_identities(),
        max_comparisons=lookup(dpath="evaluate/judge_agreement_max_comparisons", within=config),
        device=lookup(dpath="device", within=config),
        n_resamples=lookup(dpath="evaluate/bootstrap_samples", within=config),
        level=lookup(dpath="evaluate/ci_level", within=config),
        seed=lookup(dpath="seed", within=config),
    threads: 1
    resources:
        gpu=judge_gpus(),
    log:
        f"logs/judge_agreement/{RUN}.log",
    benchmark:
        f"benchmarks/judge_agreement/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/judge_agreement.py"


rule examples:
    input:
        evaluated=expand(f"{RESULTS}/evaluated/{{method}}.parquet", method=EVALUATED),
        judged=expand(f"{RESULTS}/judged/{{method}}.parquet", method=EVALUATED),
        library=library("examples.py"),
    output:
        parquet=f"{RESULTS}/tables/examples.parquet",
        csv=f"{RESULTS}/tables/examples.csv",
    threads: 1
    log:
        f"logs/examples/{RUN}.log",
    benchmark:
        f"benchmarks/examples/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/examples.py"

# Experiment, step 3: summaries of the evaluation prompts, per method and target reward.


rule generate_summaries:
    input:
        model=f"{RESULTS}/models/{{method}}",
        prompts=f"{RESULTS}/eval_prompts.parquet",
        targets=f"{RESULTS}/targets.json",
        library=library("batching", "generation", "modeling", "scalers", "generate", *METHOD_MODULES),
    output:
        f"{RESULTS}/generations/{{method}}.parquet",
    params:
        method_options=method_options,
        settings=generate_settings(),
        template=config["prompt"]["template"],
        seed=config["seed"],
        device=config["device"],
    threads: workflow.cores
    resources:
        gpu=1,
    conda:
        "../envs/rewardcond.yaml"
    log:
        "logs/generate_summaries/{method}.log",
    benchmark:
        "benchmarks/generate_summaries/{method}.tsv"
    script:
        "../scripts/generate_summaries.py"

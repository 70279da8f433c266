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
        template=prompt_template,
        seed=config["seed"],
        device=config["device"],
    # One thread: for the demo's tiny models a second one slows a job down on a shared machine
    # (tokens, 1200 steps: 188 s CPU on two threads vs 54 s on one); a GPU does the real work.
    threads: 1
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

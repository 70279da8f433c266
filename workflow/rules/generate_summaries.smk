# Experiment, step 3: summaries of the evaluation prompts, per method and target reward.


# Split by prompt into independent shard jobs (N = scale.generate_shards or `--set-scatter
# generate=N`), one GPU each; the merge restores the single-job table (README "Scaling up").
rule generate_summaries:
    input:
        model=f"{RESULTS}/models/{{method}}",
        prompts=f"{RESULTS}/eval_prompts.parquet",
        targets=f"{RESULTS}/targets.json",
        library=library(
            "batching",
            "distributed",
            "generation",
            "modeling",
            "scalers",
            "generate",
            *METHOD_MODULES,
        ),
    output:
        f"{RESULTS}/generations/shards/{{method}}.{{scatteritem}}.parquet",
    params:
        method_options=method_options,
        settings=generate_settings(),
        template=prompt_template,
        seed=config["seed"],
        device=config["device"],
    threads: workflow.cores
    resources:
        gpu=1,
    conda:
        "../envs/rewardcond.yaml"
    log:
        "logs/generate_summaries/{method}.{scatteritem}.log",
    benchmark:
        "benchmarks/generate_summaries/{method}.{scatteritem}.tsv"
    script:
        "../scripts/generate_summaries.py"


localrules:
    merge_generations,


rule merge_generations:
    input:
        shards=gather.generate(f"{RESULTS}/generations/shards/{{{{method}}}}.{{scatteritem}}.parquet"),
        library=library("distributed", "generate"),
    output:
        f"{RESULTS}/generations/{{method}}.parquet",
    log:
        "logs/merge_generations/{method}.log",
    benchmark:
        "benchmarks/merge_generations/{method}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/merge_generations.py"

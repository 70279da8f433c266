# Experiment, step 2: fine-tune each method from its base model. Checkpoints (to resume a killed
# job) live outside the declared output, which Snakemake deletes when a job fails.


rule train:
    input:
        trainset=f"{RESULTS}/trainsets/{{method}}.parquet",
        base=method_start,
        library=library("batching", "generation", "modeling", "scalers", "train", *METHOD_MODULES),
    output:
        directory(f"{RESULTS}/models/{{method}}"),
    wildcard_constraints:
        method=alternation(TRAINED_METHODS),
    params:
        method_options=method_options,
        settings=train_settings,
        checkpoints=f"{RESULTS}/checkpoints/{{method}}",
        seed=config["seed"],
        device=config["device"],
    threads: workflow.cores
    resources:
        gpu=1,
    conda:
        "../envs/rewardcond.yaml"
    log:
        "logs/train/{method}.log",
    benchmark:
        "benchmarks/train/{method}.tsv"
    script:
        "../scripts/train.py"

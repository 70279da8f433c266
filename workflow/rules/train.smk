# Experiment, step 2: fine-tune each method from its base model. Checkpoints (to resume a killed
# job) live outside the declared output, which Snakemake deletes when a job fails.


rule train:
    input:
        trainset=f"{RESULTS}/trainsets/{{method}}.parquet",
        base=method_base_model,
        library=library("batching", "generation", "modeling", "scalers", "train", *METHOD_MODULES),
    output:
        directory(f"{RESULTS}/models/{{method}}"),
    params:
        method_options=method_options,
        settings=train_settings,
        checkpoints=f"{RESULTS}/checkpoints/{{method}}",
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
        "logs/train/{method}.log",
    benchmark:
        "benchmarks/train/{method}.tsv"
    script:
        "../scripts/train.py"

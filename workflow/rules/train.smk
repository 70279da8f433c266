# Experiment, step 2: fine-tune each method from its base model. Checkpoints (to resume a killed
# job) live outside the declared output, which Snakemake deletes when a job fails. rloo also
# gets the reward model it is trained against (an input, and --scorer: its load_scorer args).


rule train:
    input:
        unpack(train_reward_model_input),
        # Its method's trainset at its pool percent (a replicate `-s<k>` shares its method's).
        trainset=model_trainset,
        base=method_start,
        accelerate_config=config["scale"]["accelerate_config"],
        library=method_library(module="rewardcond.train"),
    output:
        directory(f"{RESULTS}/models/{{method}}"),
    wildcard_constraints:
        method=alternation(TRAINED_MODELS),
    params:
        method_options=command_line_json(method_options),
        settings=command_line_json(train_settings),
        scorer=command_line_json(train_scorer),
        checkpoints=f"{RESULTS}/checkpoints/{{method}}",
        # The model's training seed: `-s<k>`, else the run's (model_seed).
        seed=model_seed,
        device=config["device"],
        launcher=train_launcher,
    # One thread: for the demo's tiny models a second one slows a job down on a shared machine
    # (tokens, 1200 steps: 188 s CPU on two threads vs 54 s on one); a GPU does the real work.
    threads: 1
    # One process per GPU (train_processes); train.global_batch_size keeps the results the same.
    resources:
        gpu=gpus(config["scale"]["train_processes"]),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("train")
    log:
        "logs/train/{method}.log",
    benchmark:
        "benchmarks/train/{method}.tsv"
    # A shell command, not a script: `accelerate launch` starts one copy of the train command
    # line per process, which a `script:` (run inside Snakemake's own Python) cannot be.
    shell:
        "{params.launcher} rewardcond.train"
        " --method {wildcards.method} --method-options {params.method_options:q}"
        " --trainset {input.trainset:q} --base {input.base:q} --output {output:q}"
        " --checkpoints {params.checkpoints:q} --settings {params.settings:q}"
        " --seed {params.seed} --device {params.device} --threads {threads}"
        " --scorer {params.scorer:q}"
        " > {log:q} 2>&1"

# Online rounds (issue 18, train.rounds >= 2): round r of a conditioned method samples from round
# r - 1's model at targets drawn from its pool, scores the samples with the proxy reward model and
# grows the pool (online_round), then continues round r - 1's model on it (train_round). Round r's
# model is `models/<method>-r<r>`, evaluated by the same rules as a method.


rule online_round:
    input:
        unpack(reward_model_input),
        unpack(previous_round),
        library=method_library("online_round.py"),
    output:
        trainset=f"{RESULTS}/trainsets/{{method}}-r{{round}}.parquet",
        report=f"{RESULTS}/trainsets/{{method}}-r{{round}}.json",
        samples=f"{RESULTS}/rounds/{{method}}-r{{round}}.samples.parquet",
    wildcard_constraints:
        method=alternation(ROUND_METHODS),
        round=r"[2-9]|[1-9][0-9]+",
    params:
        method_options=method_options,
        settings=online_settings(),
        scorer=reward_model_scorer_params(),
        batch_tokens=config["reward_model"]["batch_tokens"],
        on_empty=config["train"]["online"]["on_empty"],
        seed=config["seed"],
        device=config["device"],
    threads: 1
    resources:
        gpu=gpus(),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("trainset")
    log:
        "logs/online_round/{method}-r{round}.log",
    benchmark:
        "benchmarks/online_round/{method}-r{round}.tsv"
    script:
        "../scripts/online_round.py"


rule train_round:
    input:
        trainset=f"{RESULTS}/trainsets/{{method}}-r{{round}}.parquet",
        base=lambda wildcards: previous_round(wildcards)["model"],
        accelerate_config=config["scale"]["accelerate_config"],
        library=method_library(module="rewardcond.train"),
    output:
        directory(f"{RESULTS}/models/{{method}}-r{{round}}"),
    wildcard_constraints:
        method=alternation(ROUND_METHODS),
        round=r"[2-9]|[1-9][0-9]+",
    params:
        method_options=command_line_json(method_options),
        settings=command_line_json(round_train_settings),
        checkpoints=f"{RESULTS}/checkpoints/{{method}}-r{{round}}",
        seed=config["seed"],
        device=config["device"],
        launcher=train_launcher,
    threads: 1
    resources:
        gpu=gpus(config["scale"]["train_processes"]),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("train")
    log:
        "logs/train_round/{method}-r{round}.log",
    benchmark:
        "benchmarks/train_round/{method}-r{round}.tsv"
    # As rule train, continuing round r - 1's model (its reward scaler kept).
    shell:
        "{params.launcher} rewardcond.train"
        " --method {wildcards.method} --method-options {params.method_options:q}"
        " --trainset {input.trainset:q} --base {input.base:q} --output {output:q}"
        " --checkpoints {params.checkpoints:q} --settings {params.settings:q}"
        " --seed {params.seed} --device {params.device} --threads {threads}"
        " --scorer null --continue-training"
        " > {log:q} 2>&1"

# Reward model (issue 4): a pretrained hub RM or one trained on the comparisons; its accuracy on
# held-out comparisons; the reward of every completion (comparison summaries and references).


rule train_reward_model:
    input:
        comparisons=f"data/prepared/{SOURCE}/comparisons.parquet",
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        base=f"data/models/{config['reward_model']['train']['base']}",
        accelerate_config=config["scale"]["accelerate_config"],
        library=library(module="rewardcond.reward_models.training"),
    output:
        model=directory(f"{RESULTS}/reward_model/model"),
    params:
        train=command_line_json(reward_model_train_params),
        template=command_line_json(prompt_template),
        checkpoints=f"{RESULTS}/checkpoints/reward_model",
        seed=lookup(dpath="seed", within=config),
        device=lookup(dpath="device", within=config),
        launcher=train_launcher,
    # One thread: with models this small, a second thread gains little on an idle machine and
    # is several times slower on a busy one (measured 4.5x), while another job could use the core.
    threads: 1
    # One process per GPU, as the train rule; reward_model.train.global_batch_size keeps the
    # results the same. Checkpoints (params.checkpoints) are no output: a killed job resumes.
    resources:
        gpu=gpus(config["scale"]["train_processes"]),
    priority: stage_priority("reward_model")
    log:
        f"logs/train_reward_model/{RUN}.log",
    benchmark:
        f"benchmarks/train_reward_model/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    shell:
        "{params.launcher} rewardcond.reward_models.training"
        " --comparisons {input.comparisons:q} --posts {input.posts:q} --base {input.base:q}"
        " --output {output.model:q} --checkpoints {params.checkpoints:q}"
        " --template {params.template:q} --params {params.train:q} --seed {params.seed}"
        " --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


# Scoring is split into independent shard jobs ("1-of-N" ... "N-of-N", N = scale.score_shards or
# `--set-scatter score=N`), each on its own GPU taking whole batches of the plan made over all rows;
# the merge restores the single-job table bit for bit (README "Scaling up").
rule score_completions:
    input:
        unpack(reward_model_input),
        completions=f"data/prepared/{SOURCE}/completions.parquet",
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        library=library("score_completions.py"),
    output:
        # Temporary: deleted once merged into scored/completions.parquet and report.json.
        scored=temp(f"{RESULTS}/scored/shards/completions.{{scatteritem}}.parquet"),
        report=temp(f"{RESULTS}/scored/shards/report.{{scatteritem}}.json"),
    params:
        scorer=reward_model_scorer_params(),
        cnndm_template=cnndm_template,
        on_empty=lookup(dpath="reward_model/on_empty", within=config),
        batch_tokens=lookup(dpath="reward_model/batch_tokens", within=config),
        device=lookup(dpath="device", within=config),
    threads: 1
    resources:
        gpu=gpus(),
    priority: stage_priority("reward_model")
    log:
        f"logs/score_completions/{RUN}.{{scatteritem}}.log",
    benchmark:
        f"benchmarks/score_completions/{RUN}.{{scatteritem}}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/score_completions.py"


localrules:
    merge_scored_completions,


rule merge_scored_completions:
    input:
        scored=gather.score(f"{RESULTS}/scored/shards/completions.{{scatteritem}}.parquet"),
        reports=gather.score(f"{RESULTS}/scored/shards/report.{{scatteritem}}.json"),
        library=library("merge_scored_completions.py"),
    output:
        scored=f"{RESULTS}/scored/completions.parquet",
        report=f"{RESULTS}/scored/report.json",
    priority: stage_priority("reward_model")
    log:
        f"logs/merge_scored_completions/{RUN}.log",
    benchmark:
        f"benchmarks/merge_scored_completions/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/merge_scored_completions.py"


rule reward_model_accuracy:
    input:
        comparisons=f"data/prepared/{SOURCE}/comparisons.parquet",
        scored=f"{RESULTS}/scored/completions.parquet",
        data_report=f"data/prepared/{SOURCE}/report.json",
        library=library("reward_model_accuracy.py"),
    output:
        csv=report(
            f"{RESULTS}/reward_model/accuracy.csv",
            caption="../report/accuracy.rst",
            category="Reward model",
        ),
        md=f"{RESULTS}/reward_model/accuracy.md",
    params:
        samples=lookup(dpath="reward_model/bootstrap_samples", within=config),
        seed=lookup(dpath="seed", within=config),
    log:
        f"logs/reward_model_accuracy/{RUN}.log",
    benchmark:
        f"benchmarks/reward_model_accuracy/{RUN}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/reward_model_accuracy.py"

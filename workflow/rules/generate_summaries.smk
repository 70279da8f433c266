# Experiment, step 3: summaries of the evaluation prompts, per method and target reward.


# Split by prompt into independent shard jobs (N = scale.generate_shards or `--set-scatter
# generate=N`), one GPU each; the merge restores the single-job table (README "Scaling up").
rule generate_summaries:
    input:
        model=f"{RESULTS}/models/{{method}}",
        prompts=f"{RESULTS}/eval_prompts.parquet",
        targets=f"{RESULTS}/targets.json",
        library=method_library("generate_summaries.py"),
    output:
        # Temporary: deleted once merged into generations/{method}.parquet.
        temp(f"{RESULTS}/generations/shards/{{method}}.{{scatteritem}}.parquet"),
    wildcard_constraints:
        method=alternation(MODELS),
    params:
        method_options=method_options,
        settings=generate_settings(),
        template=prompt_template,
        # A replicate `-s<k>` samples with its own seed (model_seed).
        seed=model_seed,
        device=config["device"],
    # One thread: for the demo's tiny models a second one slows a job down on a shared machine
    # (tokens, 1200 steps: 188 s CPU on two threads vs 54 s on one); a GPU does the real work.
    threads: 1
    resources:
        gpu=gpus(),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("generate")
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
        library=library("merge_generations.py"),
    output:
        f"{RESULTS}/generations/{{method}}.parquet",
    wildcard_constraints:
        method=alternation(MODELS),
    priority: stage_priority("evaluate")
    log:
        "logs/merge_generations/{method}.log",
    benchmark:
        "benchmarks/merge_generations/{method}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/merge_generations.py"


# Best-of-N: N sampled summaries per prompt from the sft model, the reward model keeps the best;
# the same script as generate_summaries, unsharded (it takes the reward model as `scorer`).
rule generate_best_of_n:
    input:
        unpack(reward_model_input),
        # The sft model of the replicate's seed (`bon<N>-s<k>` samples from sft-s<k>).
        model=sft_model,
        prompts=f"{RESULTS}/eval_prompts.parquet",
        targets=f"{RESULTS}/targets.json",
        library=method_library("generate_summaries.py"),
    output:
        f"{RESULTS}/generations/{{method}}.parquet",
    wildcard_constraints:
        method=alternation(BEST_OF_N_MODELS),
    params:
        method_options=method_options,
        settings=generate_settings(),
        template=prompt_template,
        scorer=reward_model_scorer_params(),
        batch_tokens=config["reward_model"]["batch_tokens"],
        on_empty=config["reward_model"]["on_empty"],
        seed=model_seed,
        device=config["device"],
    # Threads per rule, not the cores of one machine (on a cluster there is none to count): one, as
    # the other rules; a cluster profile sets its own (`set-threads`), the job's --cpus-per-task.
    threads: 1
    resources:
        gpu=gpus(),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("generate")
    log:
        "logs/generate_best_of_n/{method}.log",
    benchmark:
        "benchmarks/generate_best_of_n/{method}.tsv"
    script:
        "../scripts/generate_summaries.py"

# KL(pi || pi_sft) of every method and condition on the eval prompts (issue 16 section 2), in
# nats per sequence: how far each policy moved from the sft model it started from. Monte Carlo
# over the policy's own samples for a method with a model; best-of-N's analytic bound and its
# estimate from the sft log-probabilities of its kept summaries. `publish` puts them in the tables.


rule kl:
    input:
        model=f"{RESULTS}/models/{{method}}",
        # KL from the sft model of the model's seed, where a replicate started.
        sft=sft_model,
        prompts=f"{RESULTS}/eval_prompts.parquet",
        targets=f"{RESULTS}/targets.json",
        library=method_library("kl.py"),
    output:
        f"{RESULTS}/kl/{{method}}.parquet",
    wildcard_constraints:
        method=alternation(MODELS),
    params:
        method_options=method_options,
        settings=generate_settings(),
        samples=lookup(dpath="evaluate/kl_samples", within=config),
        template=prompt_template,
        seed=model_seed,
        device=lookup(dpath="device", within=config),
    # One thread, as generate_summaries: the demo's tiny models gain nothing from a second.
    threads: 1
    resources:
        gpu=gpus(),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("generate")
    log:
        "logs/kl/{method}.log",
    benchmark:
        "benchmarks/kl/{method}.tsv"
    script:
        "../scripts/kl.py"


# Best-of-N has no model: its KL comes from its generations and the sft model that sampled them.
rule kl_best_of_n:
    input:
        generations=f"{RESULTS}/generations/{{method}}.parquet",
        sft=sft_model,
        prompts=f"{RESULTS}/eval_prompts.parquet",
        library=method_library("kl.py"),
    output:
        f"{RESULTS}/kl/{{method}}.parquet",
    wildcard_constraints:
        method=alternation(BEST_OF_N_MODELS),
    params:
        method_options=method_options,
        settings=generate_settings(),
        template=prompt_template,
        device=lookup(dpath="device", within=config),
    threads: 1
    resources:
        gpu=gpus(),
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("generate")
    log:
        "logs/kl_best_of_n/{method}.log",
    benchmark:
        "benchmarks/kl_best_of_n/{method}.tsv"
    script:
        "../scripts/kl.py"

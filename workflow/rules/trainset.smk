# Experiment, step 1: training sets per method, target rewards, evaluation prompts.


rule trainset:
    input:
        completions=trainset_completions,
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        comparisons=f"data/prepared/{SOURCE}/comparisons.parquet",
        base=method_base_model,
        library=method_library("trainset.py"),
    output:
        trainset=f"{RESULTS}/trainsets/{{method}}.parquet",
        report=f"{RESULTS}/trainsets/{{method}}.json",
    # The methods only: an online round's pool (`<method>-r<r>`) is rule online_round's.
    wildcard_constraints:
        method=alternation(METHODS),
    params:
        method_options=method_options,
        settings=trainset_settings(),
        template=prompt_template,
        seed=config["seed"],
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("trainset")
    log:
        "logs/trainset/{method}.log",
    benchmark:
        "benchmarks/trainset/{method}.tsv"
    script:
        "../scripts/trainset.py"


# A conditioned method's pool at p < 100 percent (train.pool_percents, issue 19): whole posts of
# its trainset, drawn with the run's seed (rewardcond.trainset.pool_fraction), for `<method>-f<p>`.
rule trainset_fraction:
    input:
        trainset=f"{RESULTS}/trainsets/{{method}}.parquet",
        library=library("trainset_fraction.py"),
    output:
        trainset=f"{RESULTS}/trainsets/{{method}}-f{{percent}}.parquet",
        report=f"{RESULTS}/trainsets/{{method}}-f{{percent}}.json",
    wildcard_constraints:
        method=alternation([m for m in METHODS if m in CONDITIONED_METHODS]),
        percent=alternation([str(p) for p in PERCENTS if p != 100]),
    params:
        seed=config["seed"],
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("trainset")
    log:
        "logs/trainset_fraction/{method}-f{percent}.log",
    benchmark:
        "benchmarks/trainset_fraction/{method}-f{percent}.tsv"
    script:
        "../scripts/trainset_fraction.py"


rule targets:
    input:
        scored=f"{RESULTS}/scored/completions.parquet",
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        base=f"data/models/{config['train']['base_model']}",
        library=library("targets.py"),
    output:
        f"{RESULTS}/targets.json",
    params:
        settings=trainset_settings(),
        quantiles=config["trainset"]["targets"]["quantiles"],
        beyond_max_sd=config["trainset"]["targets"]["beyond_max_sd"],
        template=prompt_template,
    conda:
        "../envs/rewardcond.yaml"
    priority: stage_priority("trainset")
    log:
        "logs/targets/targets.log",
    benchmark:
        "benchmarks/targets/targets.tsv"
    script:
        "../scripts/targets.py"


rule eval_prompts:
    input:
        posts=f"data/prepared/{SOURCE}/posts.parquet",
        library=library("eval_prompts.py"),
    output:
        f"{RESULTS}/eval_prompts.parquet",
    params:
        n=config["generate"]["n_prompts"],
        seed=config["seed"],
    conda:
        "../envs/rewardcond.yaml"
    log:
        "logs/eval_prompts/eval_prompts.log",
    benchmark:
        "benchmarks/eval_prompts/eval_prompts.tsv"
    script:
        "../scripts/eval_prompts.py"

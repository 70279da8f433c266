# Helpers shared by every stage: config validation, paths, and the library modules a rule uses.
import os
import re
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

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


def library(*modules):
    """The source files of `rewardcond` modules a rule imports, so that editing one reruns it.

    Snakemake tracks a rule's script but not what the script imports; listing the modules as
    inputs closes that gap. Names are module paths relative to the package ("data/prepare").
    """
    return [f"src/rewardcond/{module}.py" for module in ("__init__", "artifacts", *modules)]


def data_files():
    """The raw files to download: the TL;DR files, plus the CNN/DM ones when enabled."""
    data = config["data"]
    return data["files"] + (data["cnndm_files"] if data["include_cnndm"] else [])


def all_outputs():
    """Every final target of the configured run; `rule all` asks for these."""
    targets = []
    targets += [f"data/prepared/{SOURCE}/report.json"]
    targets += [f"{RESULTS}/reward_model/accuracy.csv", f"{RESULTS}/scored/completions.parquet"]
    targets += expand(f"{RESULTS}/generations/{{method}}.parquet", method=METHODS)
    return targets


# --- base models ---
BASE_MODELS = config.get("base_models", {})
BASE_MODEL_NAMES = "|".join(re.escape(name) for name in BASE_MODELS) or "(?!)"


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


def base_model_gpus(wildcards):
    """One GPU for a base model that is pretrained here, unless the config pins the CPU."""
    spec = BASE_MODELS[wildcards.name]
    pretrained = spec["source"] == "config" and spec.get("pretraining", {}).get("steps", 0) > 0
    return int(pretrained and config["device"] != "cpu")


def prompt_template(wildcards):
    """`prompt.template`, as a function so that Snakemake does not read its {fields} as wildcards."""
    return config["prompt"]["template"]


def reward_model_input(wildcards):
    """The trained reward model's folder when reward_model.kind is train (a hub RM needs none)."""
    if config["reward_model"]["kind"] == "train":
        return {"reward_model": f"{RESULTS}/reward_model/model"}
    return {}


def reward_model_scorer_params():
    """Keyword arguments of `rewardcond.scoring.load_scorer` for the configured reward model."""
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
        "path_or_hub_id": pretrained["hub_id"],
        "revision": pretrained["revision"],
        "template": pretrained["template"] or config["prompt"]["template"],
        "dtype": pretrained["gpu_dtype"],
        "max_length": pretrained["max_length"],
    }

# --- experiment: trainset, train, generate ---
METHODS = config["methods"]
# Every module of the methods package is imported (and registers itself) whenever one is used.
METHOD_MODULES = [
    f"methods/{path.stem}"
    for path in sorted(Path(workflow.basedir, "src/rewardcond/methods").glob("*.py"))
]


wildcard_constraints:
    method="|".join(re.escape(method) for method in METHODS),


def method_options(wildcards):
    """The `method_options.<method>` mapping (keyword arguments of the method's class)."""
    return config.get("method_options", {}).get(wildcards.method, {})


def method_train_config(method):
    """The `train` section with the method's `train.overrides.<method>` applied."""
    section = {key: value for key, value in config["train"].items() if key != "overrides"}
    return section | config["train"].get("overrides", {}).get(method, {})


def train_settings(wildcards):
    """The optimisation settings of a method (`TrainSettings` keyword arguments)."""
    section = method_train_config(wildcards.method)
    del section["base_model"]
    return section


def method_base_model(wildcards):
    """The base model folder a method starts from."""
    return f"data/models/{method_train_config(wildcards.method)['base_model']}"


def trainset_settings():
    """The `trainset` section without its `targets` (`TrainsetSettings` keyword arguments)."""
    return {key: value for key, value in config["trainset"].items() if key != "targets"}


def generate_settings():
    """Decoding settings (`GenerateSettings` keyword arguments); prompts are shortened to the
    same length as in training."""
    section = {key: value for key, value in config["generate"].items() if key != "n_prompts"}
    return section | {"max_prompt_tokens": config["trainset"]["max_prompt_tokens"]}

# Helpers shared by every stage: config validation, paths, and the library modules a rule uses.
import os
import re
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

# Jobs import `rewardcond` from this checkout's src/ (installed or not), so the code that runs is
# exactly the code `library()` tracks, also under --use-conda, whose env holds only the dependencies.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")])
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


def all_outputs():
    """Every final target of the configured run; `rule all` asks for these."""
    return [
        *expand(f"{RESULTS}/generations/{{method}}.parquet", method=METHODS),
    ]


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
    """The `method_options.<method>` mapping (keyword arguments of the method's class); a
    best-of-N method `bon<N>` takes those of `method_options.bon`."""
    name = "bon" if wildcards.method in BEST_OF_N else wildcards.method
    return config.get("method_options", {}).get(name, {})


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


# --- methods of issue 9: text, dpo, bon<N> ---
# Best-of-N (`bon<N>`) trains nothing and samples from the sft model; dpo fine-tunes that model.
BEST_OF_N = [method for method in METHODS if re.fullmatch(r"bon[1-9][0-9]*", method)]
TRAINED_METHODS = [method for method in METHODS if method not in BEST_OF_N]
FROM_SFT = ("dpo",)


def alternation(names):
    """A wildcard constraint matching exactly `names` (and nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


def method_start(wildcards):
    """The model folder a method's training starts from: the sft model for dpo, else its base."""
    if wildcards.method in FROM_SFT:
        return f"{RESULTS}/models/sft"
    return method_base_model(wildcards)

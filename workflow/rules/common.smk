# Helpers shared by every stage: config validation, paths, and the library modules a rule uses.
import re

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

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
    outputs = []
    # evaluate/publish stage
    outputs += [f"{RESULTS}/REPORT.md"]
    outputs += [f"{RESULTS}/tables/{name}.csv" for name in PUBLISHED_TABLES]
    return outputs


# --- evaluate/publish stage ---
PUBLISHED_TABLES = ("summary", "correlation", "winrate", "comparisons")


def evaluated_methods():
    """The methods evaluated and published: the keys (or items) of `methods:` in the config,
    which the experiment stage owns."""
    return list(config["methods"])


def evaluated_method_pattern():
    """A regex matching exactly the configured methods (so `references` is never a method)."""
    return "|".join(re.escape(method) for method in evaluated_methods())


def gold_reward_file():
    """The synthetic world's gold function; the real data has none (an empty input)."""
    return "data/raw/synthetic/gold.jsonl" if SOURCE == "synthetic" else []


def reward_scorer_args():
    """Keyword arguments of `rewardcond.scoring.load_scorer` for the run's trained reward model."""
    return {
        "kind": "trained",
        "path_or_hub_id": f"{RESULTS}/reward_model/model",
        "revision": None,
        "template": config["prompt"]["template"],
        "device": config["device"],
    }

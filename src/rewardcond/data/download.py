"""Download OpenAI's TL;DR human-feedback files from their public blob storage (or a mirror).

Each file streams into `<name>.part` with a progress bar, resumes from there (HTTP Range) after a
dropped connection, retries server errors and timeouts with exponential backoff, and is renamed
into place only once complete: its size must equal what the server announced and, when the
config gives one, its sha256 must match. Files already in place (e.g. copied by a user) are not
downloaded again. A `manifest.json` lists every file with its size and sha256.

Offline, the first connection fails and the download stops at once with a message naming what
could not be reached and the offline demo command; it never substitutes synthetic data.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from tqdm.auto import tqdm

from rewardcond import DEMO_COMMAND
from rewardcond.artifacts import sha256_file, write_json

log = logging.getLogger(__name__)

RETRYABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class DownloadError(RuntimeError):
    """A file could not be downloaded and verified; no output file was left in its place."""


class _Retry(Exception):
    """A failure worth another attempt (server error, short body, range mismatch)."""


def download_files(
    base_url: str,
    files: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    sha256: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 2.0,
    chunk_size: int = 1 << 20,
) -> dict[str, Any]:
    """Fetch `base_url/<name>` into `out_dir/<name>` for every name; write and return the manifest.

    `sha256` maps names to expected hex digests (files without one are checked by size only).
    `timeout` (seconds) applies to connecting and to each read; a failed attempt is retried up
    to `retries` times, waiting `backoff * 2**k` seconds. Raises `DownloadError` on failure.
    """
    out_dir = Path(out_dir)
    sha256 = dict(sha256 or {})
    unknown = sorted(set(sha256) - set(files))
    if unknown:
        raise ValueError(f"data.sha256 names files that are not downloaded: {unknown}")
    session = requests.Session()
    session.headers["Accept-Encoding"] = "identity"  # the bytes on disk are the blob's bytes
    fetcher = _Fetcher(
        session, base_url.rstrip("/"), out_dir, timeout, retries, backoff, chunk_size
    )
    entries = {}
    for name in files:
        entries[name] = fetcher.fetch(name, out_dir / name, sha256.get(name))
    manifest = {"source": "openai", "base_url": base_url, "files": entries}
    write_json(out_dir / "manifest.json", manifest)
    return manifest


class _Fetcher:
    def __init__(self, session, base_url, out_dir, timeout, retries, backoff, chunk_size):
        self.session, self.base_url, self.out_dir = session, base_url, out_dir
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.chunk_size = chunk_size
        self.reached = False  # whether the server has answered at all in this run

    def fetch(self, name: str, dest: Path, expected: str | None) -> dict[str, Any]:
        url = f"{self.base_url}/{name}"
        if dest.exists():
            digest = sha256_file(dest)
            if expected and digest != expected:
                raise DownloadError(
                    f"{dest} is already in place but its sha256 {digest} differs from the "
                    f"configured {expected}; remove it to download it again from {url}"
                )
            log.info("%s already in place, not downloaded again", dest)
            return {"url": url, "size": dest.stat().st_size, "sha256": digest, "downloaded": False}
        part = dest.with_name(dest.name + ".part")
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning(
                    "%s: attempt %d failed (%s); retrying in %.1fs", url, attempt, error, delay
                )
                time.sleep(delay)
            try:
                size = self._stream(url, part, name)
                break
            except requests.ConnectionError as failure:
                if not self.reached:  # offline, or a wrong host: no point in waiting
                    raise DownloadError(self._unreachable(url, failure)) from failure
                error = failure
            except (*RETRYABLE, _Retry) as failure:
                error = failure
        else:
            kept = f"; the partial file {part} is kept to resume from" if part.exists() else ""
            raise DownloadError(
                f"{url}: gave up after {self.retries + 1} attempts, last error: {error}{kept}. "
                f"For an offline run use the synthetic demo: {DEMO_COMMAND}"
            )
        digest = sha256_file(part)
        if expected and digest != expected:
            part.unlink()
            raise DownloadError(
                f"{url}: downloaded {size} bytes whose sha256 {digest} differs from the "
                f"configured {expected} (data.sha256); the file was removed"
            )
        os.replace(part, dest)
        log.info("%s: %d bytes, sha256 %s", dest, size, digest)
        return {"url": url, "size": size, "sha256": digest, "downloaded": True}

    def _stream(self, url: str, part: Path, name: str) -> int:
        """One attempt: append to `part` from where it ends; return the complete size."""
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            self.reached = True
            status = response.status_code
            if status == 416:  # the partial file is not a prefix of this blob
                part.unlink()
                raise _Retry(f"HTTP 416 for the range from byte {offset}; restarting the file")
            if status >= 500 or status == 429:
                raise _Retry(f"HTTP {status} {response.reason}")
            if status == 206:
                match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != offset:
                    part.unlink()
                    raise _Retry(
                        f"unexpected Content-Range {response.headers.get('Content-Range')!r}"
                    )
                total, mode = int(match.group(3)), "ab"
            elif status == 200:
                length = response.headers.get("Content-Length")
                if length is None:
                    raise DownloadError(
                        f"{url}: the server announced no size (Content-Length), "
                        "so the file cannot be verified"
                    )
                total, mode, offset = int(length), "wb", 0
            else:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"{url}: HTTP {status} {response.reason}; check data.base_url and data.files"
                )
            part.parent.mkdir(parents=True, exist_ok=True)
            with (
                open(part, mode) as handle,
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name) as bar,
            ):
                for chunk in response.iter_content(self.chunk_size):
                    handle.write(chunk)
                    bar.update(len(chunk))
        size = part.stat().st_size
        if size != total:
            if size > total:
                part.unlink()
            raise _Retry(f"got {size} of {total} bytes")
        return size

    def _unreachable(self, url: str, failure: Exception) -> str:
        return (
            f"Could not reach {url} ({type(failure).__name__}: {failure}). The real data needs "
            f"access to {self.base_url}: run online, point data.base_url at a mirror, or copy "
            f"the files into {self.out_dir}. "
            f"For an offline run use the synthetic demo: {DEMO_COMMAND}"
        )

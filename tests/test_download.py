"""Download against a local HTTP server on 127.0.0.1 that serves real-format files with faults.

After every fault there is either a complete, verified file or no output file and a clear error.
"""

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rewardcond import DEMO_COMMAND
from rewardcond.artifacts import sha256_file
from rewardcond.data.download import DownloadError, download_files

COMPARISON = {
    "info": {
        "id": "t3_2vwp1w",
        "post": "I had a car accident on friday.",
        "title": "Car accident",
        "subreddit": "legaladvice",
    },
    "summaries": [
        {"text": " car accident.", "policy": "sup4", "note": None},
        {"text": " other party was speeding.", "policy": "ref", "note": None},
    ],
    "choice": 1,
    "worker": "ikNmucwunMnYJCQpnq6ZYb57OW7NiD",
    "batch": "batch9",
    "split": "train",
    "extra": {"confidence": 8},
}
POST = {
    "id": "t3_2vwp1w",
    "subreddit": "legaladvice",
    "title": "Car accident",
    "post": "I had a car accident on friday.",
    "summary": " other party was speeding.",
}
BATCH = "dataset/comparisons/batch9.json"
TRAIN = "datasets/tldr_3_filtered/train.jsonl"
CONTENT = {
    BATCH: "".join(json.dumps({**COMPARISON, "choice": i % 2}) + "\n" for i in range(200)).encode(),
    TRAIN: (json.dumps(POST) + "\n").encode() * 50,
}
FAST = dict(timeout=0.3, retries=2, backoff=0.01, chunk_size=256)


class FaultyServer(ThreadingHTTPServer):
    """Serves CONTENT under /summarize-from-feedback/; `faults[name]` is consumed per request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (name, Range header)
        self.release = threading.Event()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/summarize-from-feedback"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        server: FaultyServer = self.server
        name = self.path.removeprefix("/summarize-from-feedback/")
        server.requests.append((name, self.headers.get("Range")))
        pending = server.faults.get(name, [])
        fault = pending.pop(0) if pending else "ok"
        if fault == "hang":
            server.release.wait(5)
            return
        if fault == "500":
            self.send_error(500, "Internal Server Error")
            return
        if name not in CONTENT or fault == "404":
            self.send_error(404, "The specified blob does not exist.")
            return
        body, start = CONTENT[name], 0
        ranged = self.headers.get("Range")
        if ranged and fault != "ignore_range":
            start = int(ranged.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if fault == "drop":  # half of what was announced, then the connection closes
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    server = FaultyServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def assert_complete(out, name):
    assert (out / name).read_bytes() == CONTENT[name]
    assert not (out / (name + ".part")).exists()


def test_downloads_files_and_writes_manifest_then_skips_files_in_place(server, tmp_path):
    manifest = download_files(server.base_url, [BATCH, TRAIN], tmp_path, **FAST)
    for name in (BATCH, TRAIN):
        assert_complete(tmp_path, name)
        assert manifest["files"][name] == {
            "url": f"{server.base_url}/{name}",
            "size": len(CONTENT[name]),
            "sha256": hashlib.sha256(CONTENT[name]).hexdigest(),
            "downloaded": True,
        }
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert server.requests == [(BATCH, None), (TRAIN, None)]

    again = download_files(server.base_url, [BATCH, TRAIN], tmp_path, **FAST)
    assert len(server.requests) == 2
    assert [again["files"][n]["downloaded"] for n in (BATCH, TRAIN)] == [False, False]
    assert again["files"][BATCH]["sha256"] == manifest["files"][BATCH]["sha256"]


def test_connection_dropped_mid_file_resumes_with_range(server, tmp_path):
    server.faults[BATCH] = ["drop", "drop"]
    download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert_complete(tmp_path, BATCH)
    # each retry asks for the rest from where the partial file ends (whole chunks are kept)
    names, ranges = zip(*server.requests, strict=True)
    assert names == (BATCH,) * 3 and ranges[0] is None
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert 0 < offsets[0] < offsets[1] < len(CONTENT[BATCH])


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    server.faults[BATCH] = ["drop", "ignore_range"]
    download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert_complete(tmp_path, BATCH)


def test_http_500_then_success(server, tmp_path):
    server.faults[BATCH] = ["500", "500"]
    manifest = download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert_complete(tmp_path, BATCH)
    assert len(server.requests) == 3
    assert manifest["files"][BATCH]["sha256"] == sha256_file(tmp_path / BATCH)


def test_http_500_every_time_gives_up_without_output(server, tmp_path):
    server.faults[BATCH] = ["500"] * 3
    with pytest.raises(DownloadError, match=r"gave up after 3 attempts, last error: HTTP 500"):
        download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert not (tmp_path / BATCH).exists() and not (tmp_path / "manifest.json").exists()


def test_404_is_an_error_at_once(server, tmp_path):
    name = "dataset/comparisons/batch21.json"
    with pytest.raises(DownloadError) as error:
        download_files(server.base_url, [BATCH, name], tmp_path, **FAST)
    assert str(error.value) == (
        f"{server.base_url}/{name}: HTTP 404 The specified blob does not exist.; "
        "check data.base_url and data.files"
    )
    assert [n for n, _ in server.requests] == [BATCH, name]  # not retried
    assert_complete(tmp_path, BATCH)
    assert not (tmp_path / name).exists() and not (tmp_path / (name + ".part")).exists()
    assert not (tmp_path / "manifest.json").exists()


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DownloadError, match=f"differs from the configured {wrong}"):
        download_files(server.base_url, [BATCH], tmp_path, sha256={BATCH: wrong}, **FAST)
    assert not (tmp_path / BATCH).exists() and not (tmp_path / (BATCH + ".part")).exists()
    right = hashlib.sha256(CONTENT[BATCH]).hexdigest()
    download_files(server.base_url, [BATCH], tmp_path, sha256={BATCH: right}, **FAST)
    assert_complete(tmp_path, BATCH)


def test_file_in_place_with_wrong_checksum_is_refused(server, tmp_path):
    (tmp_path / BATCH).parent.mkdir(parents=True)
    (tmp_path / BATCH).write_bytes(b"not the blob\n")
    with pytest.raises(DownloadError, match="already in place but its sha256"):
        download_files(server.base_url, [BATCH], tmp_path, sha256={BATCH: "1" * 64}, **FAST)
    assert server.requests == []


def test_server_that_never_answers_times_out(server, tmp_path):
    server.faults[BATCH] = ["hang"] * 3
    start = time.monotonic()
    with pytest.raises(DownloadError, match="gave up after 3 attempts, last error: .*timed out"):
        download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert time.monotonic() - start < 3
    assert not (tmp_path / BATCH).exists()


def test_dropped_every_time_keeps_the_partial_file_to_resume(server, tmp_path):
    server.faults[BATCH] = ["drop"] * 3
    with pytest.raises(DownloadError, match="is kept to resume from"):
        download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert not (tmp_path / BATCH).exists()
    part = (tmp_path / (BATCH + ".part")).stat().st_size
    assert 0 < part < len(CONTENT[BATCH])
    download_files(server.base_url, [BATCH], tmp_path, **FAST)
    assert_complete(tmp_path, BATCH)
    assert server.requests[-1] == (BATCH, f"bytes={part}-")


def test_offline_fails_fast_naming_the_demo_command(tmp_path):
    with socket.socket() as sock:  # a port with nobody listening: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/summarize-from-feedback"
    start = time.monotonic()
    with pytest.raises(DownloadError) as error:
        download_files(base_url, [BATCH], tmp_path, timeout=5, retries=5, backoff=10)
    assert time.monotonic() - start < 2  # no retries, no backoff
    message = str(error.value)
    assert message.startswith(f"Could not reach {base_url}/{BATCH} (ConnectionError")
    assert message.endswith(f"For an offline run use the synthetic demo: {DEMO_COMMAND}")
    assert not (tmp_path / BATCH).exists()


def test_checksums_for_unknown_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"not downloaded: \['other.json'\]"):
        download_files("http://127.0.0.1:9", [BATCH], tmp_path, sha256={"other.json": "0" * 64})

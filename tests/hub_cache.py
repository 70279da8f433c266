"""Stand-ins for the Hugging Face Hub: tiny models in a local cache laid out as the hub's client
writes it, and an endpoint that records every request made to it (no test reaches the hub)."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from conftest import build_tiny_tokenizer
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel


def put_in_hub_cache(hub_cache: Path, hub_id: str, revision: str, folder: Path) -> Path:
    """Put the files of `folder` into `hub_cache` as the hub client caches `hub_id` at commit
    `revision`: blobs named by their sha256, `snapshots/<revision>/` of relative symlinks to them,
    and `refs/main`. Returns the snapshot folder."""
    repo = hub_cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def cache_tiny_reward_model(hub_cache: Path, hub_id: str, revision: str) -> Path:
    """A tiny BERT sequence classifier with one label (a reward model) and a tokenizer."""
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        BertForSequenceClassification(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return put_in_hub_cache(hub_cache, hub_id, revision, Path(tmp))


def cache_tiny_gpt2(hub_cache: Path, hub_id: str, revision: str) -> Path:
    """A tiny GPT-2 causal LM and a tokenizer (a stand-in for `openai-community/gpt2`)."""
    tokenizer = build_tiny_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        GPT2LMHeadModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return put_in_hub_cache(hub_cache, hub_id, revision, Path(tmp))


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def recording_endpoint() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP endpoint that answers every request with 503 and records its path."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _refuse(self):
            requests.append(f"{self.command} {self.path}")
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = _refuse

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()

"""Local Hugging Face caches holding tiny random stand-ins for the hub models of the default config.

The rehearsal of the default config (tests/test_rehearsal.py) runs with `HF_HUB_OFFLINE=1` and
`HF_HUB_CACHE` pointed at a folder these builders fill in the hub's own cache layout, so that the
project's own loading code (`rewardcond.hub`, through which every hub model loads) resolves the
pinned ids and revisions exactly as it would after a real download:

    models--<org>--<name>/
        blobs/<etag>                      the file's bytes (sha256 for LFS files, git sha1 else)
        snapshots/<revision>/<file>       a relative symlink to ../../blobs/<etag>
        refs/main                         the revision the repository's main pointed to
        .no_exist/<revision>/<file>       empty: a file the loader asked for that the repo lacks

Each stand-in carries the file names that the real repository has at the pinned revision (the
files a `from_pretrained` fetches; README, .gitattributes and training_args.bin are never read):

- `openai-community/gpt2` at 607a30d ("Adds the tokenizer configuration file"): config.json,
  generation_config.json, model.safetensors, tokenizer.json, vocab.json, merges.txt and a
  tokenizer_config.json that holds only `model_max_length` (no pad token, as the real one).
  A 2-layer, 32-wide GPT-2 with a byte-level BPE whose last id is `<|endoftext|>`.
- `OpenAssistant/reward-model-deberta-v3-large-v2` at c355404 (the default config's judge, and
  the proxy with `reward_model.kind: pretrained`): config.json, pytorch_model.bin (a
  pickled state dict, as the real repo has no safetensors; transformers loads it with
  `torch.load(weights_only=True)`), spm.model, tokenizer.json, tokenizer_config.json,
  special_tokens_map.json, added_tokens.json. A 2-layer DeBERTa-v2 sequence classifier with one
  label and a SentencePiece unigram tokenizer laid out like DeBERTa-v3's ([PAD] 0, [CLS] 1,
  [SEP] 2, [UNK] 3, [MASK] added after the pieces; the real tokenizer_config's
  `model_max_length` of 1e30, so the context comes from `max_position_embeddings` 512).

Building the SentencePiece model needs the `sentencepiece` package (the `test` extra); loading
the stand-in does not, as the real repository's tokenizer.json is what transformers 5 reads.

Smaller helpers for the hub-loading and SLURM tests: `cache_tiny_reward_model` and
`cache_tiny_gpt2` (tiny BERT / GPT-2 models with the test tokenizer, through the same cache
writer), `closed_port` (a hub that refuses at once) and `recording_endpoint` (a hub that answers
503 and records every request).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

GPT2_ID = "openai-community/gpt2"
DEBERTA_RM_ID = "OpenAssistant/reward-model-deberta-v3-large-v2"
# Files that hold weights or tokenizer models are stored through Git LFS on the hub.
LFS_SUFFIXES = (".bin", ".safetensors", ".model", ".msgpack", ".h5", ".ot", ".tflite")


def repo_folder(cache: str | os.PathLike, repo_id: str) -> Path:
    """`<cache>/models--<org>--<name>`, the folder of one model repository in a hub cache."""
    return Path(cache) / ("models--" + repo_id.replace("/", "--"))


def _etag(name: str, data: bytes) -> str:
    """The blob name the hub client uses: the sha256 of an LFS file, else the git blob sha1."""
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_cached_repo(
    cache: str | os.PathLike,
    repo_id: str,
    revision: str,
    files: Mapping[str, bytes],
    *,
    missing: Iterable[str] = (),
) -> Path:
    """Write `files` (name -> bytes) as `repo_id` at `revision` into hub cache `cache`.

    `revision` must be a full 40-hex commit sha (it becomes the snapshot folder and refs/main).
    `missing` names files the repository lacks, recorded under `.no_exist/<revision>/` as the
    hub client does after a 404. Returns the snapshot folder.
    """
    if len(revision) != 40 or any(c not in "0123456789abcdef" for c in revision):
        raise ValueError(f"revision {revision!r}: expected a full 40-hex commit sha")
    folder = repo_folder(cache, repo_id)
    snapshot = folder / "snapshots" / revision
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        etag = _etag(name, data)
        (folder / "blobs" / etag).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(folder / "blobs" / etag, link.parent)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    for name in missing:
        marker = folder / ".no_exist" / revision / name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    return snapshot


def _json(value) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _saved_files(save) -> dict[str, bytes]:
    """The files `save(folder)` writes, by name."""
    with tempfile.TemporaryDirectory() as tmp:
        save(tmp)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def tiny_gpt2_files(corpus: Sequence[str], *, vocab_size: int = 512, seed: int = 0) -> dict:
    """The files of `openai-community/gpt2` at 607a30d, for a tiny random GPT-2.

    The byte-level BPE is trained on `corpus` (`vocab_size` pieces, then `<|endoftext|>` as the
    last id, as in GPT-2). The model keeps GPT-2's 1024 positions and every config key of the
    real config.json; only the sizes shrink (2 layers, width 32, 2 heads).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    eos = tokenizer.token_to_id("<|endoftext|>")
    files = {"tokenizer.json": tokenizer.to_str(pretty=True).encode()}
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.model.save(tmp)  # vocab.json and merges.txt, the slow tokenizer's files
        for name in ("vocab.json", "merges.txt"):
            files[name] = (Path(tmp) / name).read_bytes()
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": eos,
        "embd_pdrop": 0.1,
        "eos_token_id": eos,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 32,
        "n_head": 2,
        "n_layer": 2,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": tokenizer.get_vocab_size(),
    }
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**config))
    weights = _saved_files(lambda folder: model.save_pretrained(folder, safe_serialization=True))
    files["model.safetensors"] = weights["model.safetensors"]
    files["config.json"] = _json(config)
    files["generation_config.json"] = _json(
        {"bos_token_id": eos, "eos_token_id": eos, "transformers_version": "4.26.0.dev0"}
    )
    files["tokenizer_config.json"] = _json({"model_max_length": 1024})
    return files


DEBERTA_SPECIAL = {
    "bos_token": "[CLS]",
    "cls_token": "[CLS]",
    "eos_token": "[SEP]",
    "mask_token": "[MASK]",
    "pad_token": "[PAD]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
}


def tiny_deberta_reward_model_files(
    corpus: Sequence[str], *, vocab_size: int = 400, seed: int = 0
) -> dict:
    """The files of `OpenAssistant/reward-model-deberta-v3-large-v2` at c355404, tiny and random.

    A SentencePiece unigram model (`vocab_size` pieces) trained on `corpus` with DeBERTa-v3's
    special pieces, converted by transformers into tokenizer.json as the real repo ships it; a
    `DebertaV2ForSequenceClassification` (2 layers, width 32, one label) with DeBERTa-v3-large's
    relative-attention settings, pickled as pytorch_model.bin.
    """
    import sentencepiece as spm
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, DebertaV2Tokenizer

    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model_file,
        model_type="unigram",
        vocab_size=vocab_size,
        pad_id=0,
        pad_piece="[PAD]",
        bos_id=1,
        bos_piece="[CLS]",
        eos_id=2,
        eos_piece="[SEP]",
        unk_id=3,
        unk_piece="[UNK]",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    tokenizer_config = {
        **DEBERTA_SPECIAL,
        "do_lower_case": False,
        "model_max_length": 1000000000000000019884624838656,
        "name_or_path": "microsoft/deberta-v3-large",
        "sp_model_kwargs": {},
        "special_tokens_map_file": None,
        "split_by_punct": False,
        "tokenizer_class": "DebertaV2Tokenizer",
        "vocab_type": "spm",
    }
    files = {
        "spm.model": model_file.getvalue(),
        "tokenizer_config.json": _json(tokenizer_config),
        "special_tokens_map.json": _json(DEBERTA_SPECIAL),
    }
    # The pieces and scores, read with sentencepiece itself (transformers' own converter would
    # also need protobuf), make the Unigram tokenizer that tokenizer.json holds.
    processor = spm.SentencePieceProcessor(model_proto=files["spm.model"])
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(len(processor))]
    tokenizer = DebertaV2Tokenizer(vocab=pieces, unk_id=processor.unk_id(), **DEBERTA_SPECIAL)
    if tokenizer.convert_tokens_to_ids("[MASK]") != len(processor):
        raise AssertionError("[MASK] must follow the SentencePiece pieces, as in DeBERTa-v3")
    files["added_tokens.json"] = _json({"[MASK]": len(processor)})
    files["tokenizer.json"] = _saved_files(tokenizer.save_pretrained)["tokenizer.json"]
    config = {
        "architectures": ["DebertaV2ForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "id2label": {"0": "LABEL_0"},
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "label2id": {"LABEL_0": 0},
        "layer_norm_eps": 1e-07,
        "max_position_embeddings": 512,
        "max_relative_positions": -1,
        "model_type": "deberta-v2",
        "norm_rel_ebd": "layer_norm",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "pooler_dropout": 0,
        "pooler_hidden_act": "gelu",
        "pooler_hidden_size": 32,
        "pos_att_type": ["p2c", "c2p"],
        "position_biased_input": False,
        "position_buckets": 256,
        "relative_attention": True,
        "share_att_key": True,
        "torch_dtype": "float32",
        "transformers_version": "4.25.1",
        "type_vocab_size": 0,
        "vocab_size": len(processor) + 100,  # like DeBERTa-v3: rows beyond the tokenizer's ids
    }
    torch.manual_seed(seed)
    model = DebertaV2ForSequenceClassification(DebertaV2Config(**config))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    files["pytorch_model.bin"] = buffer.getvalue()
    files["config.json"] = _json(config)
    return files


def populate_default_hub_cache(
    cache: str | os.PathLike, corpus: Sequence[str], revisions: Mapping[str, str]
) -> dict[str, Path]:
    """Fill `cache` with the stand-ins of both hub models of the default config.

    `revisions` maps each hub id (GPT2_ID, DEBERTA_RM_ID) to the revision the config pins.
    Returns the snapshot folder of each.
    """
    return {
        GPT2_ID: write_cached_repo(cache, GPT2_ID, revisions[GPT2_ID], tiny_gpt2_files(corpus)),
        DEBERTA_RM_ID: write_cached_repo(
            cache,
            DEBERTA_RM_ID,
            revisions[DEBERTA_RM_ID],
            tiny_deberta_reward_model_files(corpus),
            missing=["model.safetensors", "model.safetensors.index.json"],
        ),
    }


# --- small stand-ins for the hub-loading and SLURM tests ---------------------------------------


def put_in_hub_cache(hub_cache: Path, hub_id: str, revision: str, folder: Path) -> Path:
    """Put the files of `folder` into `hub_cache` as the hub client caches `hub_id` at commit
    `revision` (see `write_cached_repo`). Returns the snapshot folder."""
    files = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    return write_cached_repo(hub_cache, hub_id, revision, files)


def cache_tiny_reward_model(hub_cache: Path, hub_id: str, revision: str) -> Path:
    """A tiny BERT sequence classifier with one label (a reward model) and a tokenizer."""
    from conftest import build_tiny_tokenizer
    from transformers import BertConfig, BertForSequenceClassification

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
    from conftest import build_tiny_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

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

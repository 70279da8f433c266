"""The rehearsal's hub stand-ins (tests/hub_cache.py) load through the project's own code, offline,
from the pinned ids and revisions, as the real repositories would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from hub_cache import DEBERTA_RM_ID, GPT2_ID, populate_default_hub_cache, repo_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())
REVISIONS = {
    GPT2_ID: CONFIG["base_models"]["gpt2"]["revision"],
    DEBERTA_RM_ID: CONFIG["reward_model"]["pretrained"]["revision"],
}
CORPUS = [f"my roommate broke the oven {i} times last week, what now?" for i in range(50)]

# Run in a fresh process: HF_HUB_OFFLINE and HF_HUB_CACHE are read when huggingface_hub is
# imported. sentencepiece and protobuf are blocked: loading the real repositories needs neither.
LOAD = """
import json, sys
sys.modules["sentencepiece"] = None
sys.modules["google.protobuf"] = None
import torch
calls = []
real_load = torch.load
def recording_load(*args, **kwargs):
    calls.append(kwargs.get("weights_only"))
    return real_load(*args, **kwargs)
torch.load = recording_load
from rewardcond.base_models.hub import load_from_hub
from rewardcond.reward_models.scoring import load_scorer
gpt2, gpt2_tokenizer, info = load_from_hub({gpt2!r}, {gpt2_revision!r})
scorer = load_scorer(kind="pretrained", path_or_hub_id={rm!r}, revision={rm_revision!r},
                     template="POST: {{post}}\\n\\nTL;DR:", device="cpu", progress=False)
pair = scorer.tokenizer("question", "answer")
print(json.dumps({{
    "gpt2": [type(gpt2).__name__, info, gpt2_tokenizer.eos_token, gpt2_tokenizer.pad_token,
             gpt2.config.n_positions, gpt2_tokenizer.model_max_length],
    "rm": [type(scorer.model).__name__, type(scorer.tokenizer).__name__, scorer.max_length,
           scorer.model.config.num_labels],
    "pair": scorer.tokenizer.convert_ids_to_tokens(pair["input_ids"]),
    "torch_load_weights_only": calls,
    "rewards": scorer.score([{{"subreddit": "a", "title": "b", "post": "c"}}] * 2,
                            [" one", " two"]).tolist(),
}}))
"""


def test_stand_ins_load_offline_from_the_pinned_revisions(tmp_path):
    snapshots = populate_default_hub_cache(tmp_path / "hub", CORPUS, REVISIONS)
    assert sorted(p.name for p in snapshots[GPT2_ID].iterdir()) == [
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    assert sorted(p.name for p in snapshots[DEBERTA_RM_ID].iterdir()) == [
        "added_tokens.json",
        "config.json",
        "pytorch_model.bin",
        "special_tokens_map.json",
        "spm.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    for repo_id, revision in REVISIONS.items():
        folder = repo_folder(tmp_path / "hub", repo_id)
        assert (folder / "refs" / "main").read_text() == revision
        assert all(p.is_symlink() and p.resolve().parent == folder / "blobs"
                   for p in snapshots[repo_id].iterdir())  # fmt: skip

    script = LOAD.format(
        gpt2=GPT2_ID,
        gpt2_revision=REVISIONS[GPT2_ID],
        rm=DEBERTA_RM_ID,
        rm_revision=REVISIONS[DEBERTA_RM_ID],
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env |= {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["gpt2"] == [
        "GPT2LMHeadModel",
        {"identity": f"{GPT2_ID}@{REVISIONS[GPT2_ID]}"},
        "<|endoftext|>",
        None,  # GPT-2 has no pad token; the base_model rule gives it EOS
        1024,
        1024,
    ]
    assert loaded["rm"] == ["DebertaV2ForSequenceClassification", "DebertaV2Tokenizer", 512, 1]
    # DeBERTa-v3's pair encoding, with the SentencePiece word-boundary marker
    assert loaded["pair"][0] == "[CLS]" and loaded["pair"].count("[SEP]") == 2
    assert loaded["pair"][-1] == "[SEP]" and loaded["pair"][1].startswith("\u2581")
    # the pickled weights went through torch.load(weights_only=True), and only they did
    assert loaded["torch_load_weights_only"] == [True]
    assert len(loaded["rewards"]) == 2

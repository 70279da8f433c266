"""The reward model trained under DDP gives the results of one process.

The train_reward_model rule's own code path: `accelerate launch` (workflow/accelerate/ddp.yaml)
starts `python -m rewardcond.reward_models.training` (the rule's command line) on a tiny GPT-2
without dropout; on this CPU-only machine the processes talk over gloo.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from reward_helpers import TEMPLATE, tiny_base, toy_comparisons, toy_posts
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"global_batch_size": 8, "per_device_batch_size": 8, "lr": 1e-3, "warmup_ratio": 0.0,
          "save_steps": 2, "logging_steps": 1, "max_length": 96, "batch_tokens": 512}  # fmt: skip
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    """32 posts of varied length, one comparison each, and a tiny GPT-2 base (no dropout)."""
    root = tmp_path_factory.mktemp("rm_ddp_world")
    posts = toy_posts(32).assign(domain="tldr")
    posts["post"] = [p + " More." * (i % 7) for i, p in enumerate(posts["post"])]
    posts.to_parquet(root / "posts.parquet")
    toy_comparisons(posts).to_parquet(root / "comparisons.parquet")
    tiny_base(tiny_tokenizer).save_pretrained(root / "base")  # dropout 0 is set below
    config = json.loads((root / "base" / "config.json").read_text())
    config.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    (root / "base" / "config.json").write_text(json.dumps(config))
    tiny_tokenizer.save_pretrained(root / "base")
    return root


def train(world: Path, run: Path, processes: int) -> Path:
    """The rule's command for `processes` CPU processes; the final model folder."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "workflow/accelerate/ddp.yaml"),
        "--num_processes", str(processes),
        "--module", "rewardcond.reward_models.training",
        "--comparisons", str(world / "comparisons.parquet"),
        "--posts", str(world / "posts.parquet"),
        "--base", str(world / "base"),
        "--output", str(run / "model"),
        "--checkpoints", str(run / "checkpoints"),
        "--template", json.dumps(TEMPLATE),
        "--params", json.dumps(PARAMS),
        "--seed", "7",
        "--device", "cpu",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    run.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    (run / "train.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return run / "model"


def test_reward_model_ddp_two_processes_match_one_process(world, tmp_path):
    one = train(world, tmp_path / "one", processes=1)
    two = train(world, tmp_path / "two", processes=2)
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["params"]["world_size"] == 2
    assert manifest["params"]["template"] == TEMPLATE  # the rule passes it as JSON
    log = (tmp_path / "two" / "train.log").read_text()
    assert "global batch 8 = 4 per device x 1 accumulation x 2 processes" in log
    ours, theirs = pd.read_csv(two / "loss.csv"), pd.read_csv(one / "loss.csv")
    assert ours["step"].tolist() == theirs["step"].tolist() == [1, 2, 3, 4]  # 32 pairs / 8
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=0, atol=TOLERANCE)
    first, second = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert first.keys() == second.keys()
    differences = {k: (first[k] - second[k]).abs() for k in first}
    for key in [k for k in differences if k.endswith("attn.c_attn.bias")]:
        # The key bias adds q.b_k to every score of a query: softmax cannot see it, so its true
        # gradient is 0 and it moves on rounding noise only, which Adam scales up to ~lr (at
        # step 1 a step is lr x g/|g| whatever |g|); as for the head's bias, only the rest count.
        width = len(differences[key]) // 3
        differences[key] = torch.cat([differences[key][:width], differences[key][2 * width :]])
    worst = {k: v.max().item() for k, v in differences.items()}
    assert max(worst.values()) < TOLERANCE, sorted(worst.items(), key=lambda x: -x[1])[:5]
    base = load_file(world / "base" / "model.safetensors")["transformer.wpe.weight"]
    moved = (first["backbone.wpe.weight"] - base).abs().max().item()
    assert moved > 100 * TOLERANCE  # training moved the weights: equality is not vacuous

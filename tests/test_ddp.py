"""Training under DDP gives the results of one process, and resumes after a kill.

The train stage's own code path: `accelerate launch` (workflow/accelerate/ddp.yaml, the file the
train rule uses) starts `python -m rewardcond.train` (the rule's command line), which calls
`rewardcond.train.train_method` (HF Trainer) on a tiny reward-conditioned GPT-2. On this CPU-only
machine the processes talk over gloo. Dropout is 0 in the tiny base: with dropout each process
draws its own masks, so runs would agree only in distribution.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
SETTINGS = {
    "global_batch_size": 8,
    "per_device_batch_size": 8,  # 1 process: 8 per step; 2 processes: 4 each
    "max_steps": STEPS,
    "learning_rate": 1e-3,
    "lr_scheduler": "linear",
    "warmup_ratio": 0.0,
    "save_steps": 2,
    "save_total_limit": 10,
    "logging_steps": 1,
}
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    """A tiny GPT-2 base folder (no dropout) and a training set of prompts of varied length."""
    root = tmp_path_factory.mktemp("ddp_world")
    tokenizer = tiny_tokenizer
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    rng = np.random.default_rng(0)
    words = np.array(["my", "roommate", "never", "cleans", "the", "flat", "I", "owe", "rent"])
    rows = [
        {
            "prompt": "POST: " + " ".join(rng.choice(words, rng.integers(3, 20))) + "\n\nTL;DR:",
            "completion": " " + " ".join(rng.choice(words, rng.integers(1, 12))),
            "reward": float(rng.normal()),
        }
        for _ in range(64)
    ]
    pd.DataFrame(rows).to_parquet(root / "trainset.parquet")
    return root


def launch(world: Path, run: Path, processes: int) -> subprocess.Popen:
    """The train rule's command for `processes` CPU processes; output to run/train.log."""
    run.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "workflow/accelerate/ddp.yaml"),
        "--num_processes",
        str(processes),
        "--module",
        "rewardcond.train",
        "--method",
        "scalar",
        "--trainset",
        str(world / "trainset.parquet"),
        "--base",
        str(world / "base"),
        "--output",
        str(run / "model"),
        "--checkpoints",
        str(run / "checkpoints"),
        "--settings",
        json.dumps(SETTINGS),
        "--seed",
        "7",
        "--device",
        "cpu",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    log = open(run / "train.log", "a")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def train(world: Path, run: Path, processes: int) -> Path:
    """Run training to the end; the final model folder."""
    process = launch(world, run, processes)
    try:
        returncode = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert returncode == 0, (run / "train.log").read_text()[-3000:]
    return run / "model"


def losses(model: Path) -> pd.DataFrame:
    return pd.read_csv(model / "loss.csv")[["step", "loss"]]


def max_weight_difference(a: Path, b: Path) -> float:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert first.keys() == second.keys()
    return max((first[name] - second[name]).abs().max().item() for name in first)


def assert_same_training(model: Path, reference: Path) -> None:
    """Step-for-step losses within 1e-5 and final weights within 1e-5, over STEPS steps."""
    ours, theirs = losses(model), losses(reference)
    assert ours["step"].tolist() == theirs["step"].tolist() == list(range(1, STEPS + 1))
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=0, atol=LOSS_TOLERANCE)
    assert max_weight_difference(model, reference) < WEIGHT_TOLERANCE


@pytest.fixture(scope="module")
def single_process(world, tmp_path_factory):
    """One process, 8 examples per step: the reference."""
    return train(world, tmp_path_factory.mktemp("single"), processes=1)


def test_ddp_two_processes_match_one_process(world, single_process, tmp_path):
    two = train(world, tmp_path, processes=2)
    assert json.loads((two / "manifest.json").read_text())["params"]["world_size"] == 2
    assert (
        "global batch 8 = 4 per device x 1 accumulation x 2 processes"
        in (tmp_path / "train.log").read_text()
    )
    assert_same_training(two, single_process)
    # Training moved the weights far more than the tolerance, so equality is not vacuous.
    base = load_file(world / "base" / "model.safetensors")["transformer.wpe.weight"]
    trained = load_file(two / "model.safetensors")["language_model.transformer.wpe.weight"]
    assert (trained - base).abs().max().item() > 100 * WEIGHT_TOLERANCE


def wait_for(path: Path, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, (
            f"training ended before {path} appeared:\n" + (log.read_text()[-3000:])
        )
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def test_ddp_resume_after_kill(world, single_process, tmp_path):
    """Kill a 2-process run while it saves the step-4 checkpoint; the rerun resumes from step 2.

    A FIFO in place of checkpoint-4's trainer_state.json (the file the Trainer writes last) holds
    rank 0 inside that save, deterministically; SIGKILL to the launcher's process group then
    leaves a half-written checkpoint-4, which the resume must skip.
    """
    checkpoints = tmp_path / "checkpoints"
    process = launch(world, tmp_path, processes=2)
    try:
        # Written before training starts (after stale checkpoints are cleared).
        wait_for(checkpoints / "fingerprint.json", process, tmp_path / "train.log")
        (checkpoints / "checkpoint-4").mkdir()
        os.mkfifo(checkpoints / "checkpoint-4" / "trainer_state.json")
        wait_for(
            checkpoints / "checkpoint-4" / "model.safetensors", process, tmp_path / "train.log"
        )
        assert (checkpoints / "checkpoint-2" / "trainer_state.json").is_file()
    finally:
        # The launcher starts its workers in sessions of their own: kill them by ancestry.
        workers = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGKILL)
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        process.wait()
        psutil.wait_procs(workers, timeout=30)
    assert not (tmp_path / "model").exists()
    (checkpoints / "checkpoint-4" / "trainer_state.json").unlink()

    resumed = train(world, tmp_path, processes=2)

    log = (tmp_path / "train.log").read_text()
    assert f"resuming scalar from {checkpoints / 'checkpoint-2'}" in log
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert manifest["resumed_from"] == str(checkpoints / "checkpoint-2")
    assert manifest["global_step"] == STEPS
    assert_same_training(resumed, single_process)

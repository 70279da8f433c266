"""Training throughput, peak memory and MFU per model size; memory per GPU for DDP vs FSDP.

Measured (the configurations this machine can run): optimizer steps of the project's model
(`RewardConditionedLM` over a GPT-2-shaped base, AdamW, loss on every token) for a tiny base and
a GPT-2-small-shaped one (124M). Each size runs in a fresh process so that its peak memory is
its own (CUDA: `max_memory_allocated`; CPU: peak RSS above the process's RSS before the model).
Throughput is the median of interleaved pairs with a baseline measured in the same run: a
large matmul on the same device, which gives the device's practical peak. MFU uses the
standard 6 x params x tokens/s (forward + backward) over a peak FLOP/s: the device's spec with
`--peak-tflops` (H100 SXM bf16 dense: 989), else the measured matmul rate.

Estimated (what cannot run here: big bases, several GPUs): model-state memory per GPU from the
parameter count with bf16 autocast over fp32 weights and AdamW (Trainer's bf16 mode):
    DDP:  16 x P bytes  (fp32 weights 4P + fp32 grads 4P + Adam moments 8P) on every GPU
    FSDP: 16 x P / N bytes + 2 x 2 x (largest block) bytes (bf16 all-gather, one prefetched)
plus activations, per sequence of s tokens, in bf16 (Korthikanti et al. 2022, no recompute):
    L x s x (34 d + 5 a s) bytes;  with gradient checkpointing about L x s x 2 d bytes + one
    layer's full activations.

    PYTHONPATH=src python tests/benchmarks/bench_scaling.py            # CPU here: tiny + 124M
    PYTHONPATH=src python tests/benchmarks/bench_scaling.py --device cuda --dtype bf16 \\
        --seq 512 --batch 16 --sizes gpt2 --peak-tflops 989          # on an H100
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

# name: (params, layers, hidden, heads, vocab); parameter counts as published.
ESTIMATE_MODELS = {
    "gpt2 (124M)": (124e6, 12, 768, 12, 50257),
    "gpt2-large (774M)": (774e6, 36, 1280, 20, 50257),
    "Pythia-1B": (1.01e9, 16, 2048, 8, 50304),
    "Pythia-2.8B": (2.78e9, 32, 2560, 32, 50304),
    "Pythia-6.9B": (6.86e9, 32, 4096, 32, 50304),
    "GPT-J-6B": (6.05e9, 28, 4096, 16, 50400),
}
# Measured sizes: GPT-2-shaped bases.
SIZES = {
    "tiny": {"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 1024},
    "gpt2": {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257},
}
GIB = 2**30


def memory_table(gpus: int, seq: int, gpu_gib: float) -> list[dict]:
    """Per-GPU memory estimates (GiB) for every model of ESTIMATE_MODELS."""
    rows = []
    for name, (params, layers, hidden, heads, vocab) in ESTIMATE_MODELS.items():
        states = 16 * params
        block = max(12 * hidden**2, vocab * hidden)  # a transformer block, or the embedding
        fsdp = states / gpus + 2 * 2 * block
        activations = layers * seq * (34 * hidden + 5 * heads * seq)
        checkpointed = layers * seq * 2 * hidden + seq * (34 * hidden + 5 * heads * seq)
        rows.append(
            {
                "model": name,
                "params": f"{params / 1e9:.2f}B",
                "ddp_states": states / GIB,
                f"fsdp{gpus}_states": fsdp / GIB,
                "act_per_seq": activations / GIB,
                "act_per_seq_ckpt": checkpointed / GIB,
                "ddp_fits": states + activations < gpu_gib * GIB,
            }
        )
    return rows


def print_memory_table(gpus: int, seq: int, gpu_gib: float) -> None:
    rows = memory_table(gpus, seq, gpu_gib)
    print(
        f"\nMemory per GPU (GiB), bf16 autocast + fp32 AdamW, N={gpus} GPUs, sequence {seq}"
        f" (estimates; activations per sequence of the micro-batch)"
    )
    header = (
        f"| model | params | DDP model states | FSDP N={gpus} model states | "
        f"activations/seq | with checkpointing | DDP fits {gpu_gib:.0f} GiB at batch 1 |"
    )
    print(header)
    print("|" + "---|" * 7)
    for row in rows:
        print(
            f"| {row['model']} | {row['params']} | {row['ddp_states']:.1f} |"
            f" {row[f'fsdp{gpus}_states']:.1f} | {row['act_per_seq']:.2f} |"
            f" {row['act_per_seq_ckpt']:.2f} | {'yes' if row['ddp_fits'] else 'no'} |"
        )


def estimate_bytes(params: int, size: str, seq: int, batch: int, dtype: str) -> float:
    """The formula for a measured size: 16 P + activations + logits (fp32 logits, 3 copies)."""
    spec = SIZES[size]
    layers, hidden, heads = spec["n_layer"], spec["n_embd"], spec["n_head"]
    activations = layers * seq * (34 * hidden + 5 * heads * seq) * (1 if dtype == "bf16" else 2)
    logits = 3 * seq * spec["vocab_size"] * 4
    return 16 * params + batch * (activations + logits)


def build(size: str, device: str, seq: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    from rewardcond.modeling import RewardConditionedLM

    spec = SIZES[size]
    eos = spec["vocab_size"] - 1
    config = GPT2Config(n_positions=max(1024, seq + 1), bos_token_id=eos, eos_token_id=eos, **spec)
    config.embd_pdrop = config.resid_pdrop = config.attn_pdrop = 0.0
    torch.manual_seed(0)
    model = RewardConditionedLM.from_base(GPT2LMHeadModel(config)).to(device).train()
    return model, spec["vocab_size"]


def measure(size: str, device: str, dtype: str, seq: int, batch: int, pairs: int) -> dict:
    """Run in a fresh process: steps/s of the model and of the matmul baseline, peak memory."""
    import transformers  # noqa: F401 - imported before the RSS baseline, which counts the model

    import rewardcond.modeling  # noqa: F401

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model, vocab = build(size, device, seq)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (batch, seq), generator=generator).to(device)
    rewards = torch.randn(batch, generator=generator).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16")
    side = 2048 if device == "cuda" else 512
    left = torch.randn(side, side, device=device, dtype=torch.bfloat16 if dtype == "bf16" else None)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def train_step():
        with autocast:
            loss = model(input_ids=input_ids, target_rewards=rewards, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def matmuls():
        for _ in range(8):
            left @ left

    def timed(work) -> float:
        sync()
        start = time.perf_counter()
        work()
        sync()
        return time.perf_counter() - start

    train_step()  # warm-up: allocations, kernels, optimizer state
    matmuls()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps, baselines = [], []
    for pair in range(pairs):
        order = (train_step, matmuls) if pair % 2 == 0 else (matmuls, train_step)
        times = {work: timed(work) for work in order}
        steps.append(times[train_step])
        baselines.append(times[matmuls])
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    step_s, matmul_s = statistics.median(steps), statistics.median(baselines)
    return {
        "size": size,
        "params": params,
        "tokens_per_s": batch * seq / step_s,
        "matmul_flops": 8 * 2 * side**3 / matmul_s,
        "ratio": step_s / matmul_s,
        "peak_bytes": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="cuda: bf16")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["tiny", "gpt2"])
    parser.add_argument("--seq", type=int, default=None, help="default 512 on cuda, 128 on cpu")
    parser.add_argument("--batch", type=int, default=None, help="default 16 on cuda, 2 on cpu")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device spec peak")
    parser.add_argument("--gpus", type=int, default=8, help="N for the FSDP estimate")
    parser.add_argument("--gpu-gib", type=float, default=80.0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    dtype = args.dtype or ("bf16" if cuda else "fp32")
    seq = args.seq or (512 if cuda else 128)
    batch = args.batch or (16 if cuda else 2)
    if args.child:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.child, args.device, dtype, seq, batch, args.pairs)))
        return

    threads = args.threads or torch.get_num_threads()
    print(f"device {args.device} ({threads} threads), {dtype}, sequence {seq}, batch {batch},")
    print(f"median of {args.pairs} interleaved pairs; baseline: 8 square matmuls on the device")
    print("| base | params | tokens/s | step / 8 matmuls | peak memory | formula | MFU |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", size, "--device", args.device]
        command += ["--dtype", dtype, "--seq", str(seq), "--batch", str(batch)]
        command += ["--pairs", str(args.pairs)] + (
            ["--threads", str(args.threads)] * bool(args.threads)
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"{size} failed:\n{result.stderr[-2000:]}")
        row = json.loads(result.stdout.strip().splitlines()[-1])
        peak = args.peak_tflops * 1e12 if args.peak_tflops else row["matmul_flops"]
        mfu = 6 * row["params"] * row["tokens_per_s"] / peak
        print(
            f"| {size} | {row['params'] / 1e6:.1f}M | {row['tokens_per_s']:,.0f} |"
            f" {row['ratio']:.2f} | {row['peak_bytes'] / GIB:.2f} GiB |"
            f" {estimate_bytes(row['params'], size, seq, batch, dtype) / GIB:.2f} GiB |"
            f" {mfu:.1%} of {'spec' if args.peak_tflops else 'measured matmul'}"
            f" {peak / 1e12:.2f} TFLOP/s |"
        )
    print_memory_table(args.gpus, 512, args.gpu_gib)


if __name__ == "__main__":
    main()

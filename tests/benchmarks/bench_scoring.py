"""Scoring throughput: length-bucketed (token-budget) batches vs naive fixed-size batches.

A TL;DR-like length mix (prompts ~100-500 tokens, summaries ~10-60) is scored by a small GPT-2
reward model both ways with the same memory budget (naive: `--batch-size` rows in the table's
order, padded to the batch's longest; bucketed: longest first, rows x width <= batch-size x the
longest input). Prints real-tokens/s for both, the median of interleaved pairs (alternating which
runs first), and the exact FLOP ratio of one pass each (torch.utils.flop_counter).

    PYTHONPATH=src python tests/benchmarks/bench_scoring.py [--rows 192] [--pairs 5]
"""

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel

from rewardcond.reward_models.inputs import length_batches
from rewardcond.reward_models.model import RewardModel
from rewardcond.reward_models.scoring import RewardModelScorer


def tldr_lengths(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Prompt ~ lognormal centred near 250 tokens, clipped to 100-500; summary 10-60; + EOS."""
    prompts = np.clip(rng.lognormal(np.log(250), 0.45, rows), 100, 500).astype(int)
    return prompts + rng.integers(10, 61, rows) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=192)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=128, help="hidden size of the GPT-2 RM")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    lengths = tldr_lengths(args.rows, rng)
    encodings = [{"input_ids": rng.integers(1, 4096, n).tolist()} for n in lengths]
    config = GPT2Config(
        vocab_size=4096, n_embd=args.width, n_layer=args.layers, n_head=4, n_positions=1024
    )
    model = RewardModel.from_base(GPT2LMHeadModel(config))
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=0, model_max_length=1024)
    scorer = RewardModelScorer(
        model, tokenizer, template="{post}", identity="bench", device=args.device, progress=False
    )
    naive = np.array_split(np.arange(args.rows), range(args.batch_size, args.rows, args.batch_size))
    budget = args.batch_size * int(lengths.max())
    bucketed = length_batches(lengths, batch_tokens=budget)
    names = [str(i) for i in range(args.rows)]

    def timed(batches) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        scorer.run_batches(encodings, batches, names)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    reference = scorer.run_batches(encodings, naive, names)
    assert np.allclose(scorer.run_batches(encodings, bucketed, names), reference, atol=1e-4)
    ratios, naive_tps, bucketed_tps = [], [], []
    for pair in range(args.pairs):
        if pair % 2:
            t_bucketed, t_naive = timed(bucketed), timed(naive)
        else:
            t_naive, t_bucketed = timed(naive), timed(bucketed)
        ratios.append(t_naive / t_bucketed)
        naive_tps.append(lengths.sum() / t_naive)
        bucketed_tps.append(lengths.sum() / t_bucketed)

    def flops(batches) -> int:
        with FlopCounterMode(display=False) as counter:
            scorer.run_batches(encodings, batches, names)
        return counter.get_total_flops()

    def padded(batches) -> int:
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    print(
        f"device {args.device}; {args.rows} rows, {int(lengths.sum())} real tokens "
        f"(min {lengths.min()}, median {int(np.median(lengths))}, max {lengths.max()}); "
        f"GPT-2 RM {args.layers}x{args.width}"
    )
    print(
        f"naive:    {len(naive)} batches of {args.batch_size}, "
        f"{padded(naive) / lengths.sum():.3f} padded tokens per real token, "
        f"median {np.median(naive_tps):,.0f} real tokens/s"
    )
    print(
        f"bucketed: {len(bucketed)} batches, budget {budget} tokens, "
        f"{padded(bucketed) / lengths.sum():.3f} padded tokens per real token, "
        f"median {np.median(bucketed_tps):,.0f} real tokens/s"
    )
    print(
        f"throughput ratio bucketed/naive: median {np.median(ratios):.2f}x over {args.pairs} "
        f"interleaved pairs (min {min(ratios):.2f}, max {max(ratios):.2f}); target >= 1.5x"
    )
    print(f"FLOP ratio naive/bucketed (exact): {flops(naive) / flops(bucketed):.3f}")


if __name__ == "__main__":
    main()

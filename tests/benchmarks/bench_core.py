"""Overhead of the reward slot against a plain GPT-2, on a GPT-2-small-shaped random model (CPU).

Prints, for a training step (forward + backward, batch 8 x 128) and for greedy generation of 32
tokens for 4 prompts, the median over interleaved pairs (alternating which runs first) of the
time ratio conditioned / plain, and the exact FLOP ratio from torch.utils.flop_counter.
Targets (issue 2): training <= 1.03, generation <= 1.05.

    PYTHONPATH=src python tests/benchmarks/bench_core.py [--pairs 10]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel

from rewardcond.modeling import RewardConditionedLM


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def flops(function) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return counter.get_total_flops()


def compare(name: str, plain, conditioned, pairs: int) -> None:
    plain(), conditioned()  # warm-up
    ratios, plain_times, conditioned_times = [], [], []
    for pair in range(pairs):
        if pair % 2:
            t_conditioned, t_plain = timed(conditioned), timed(plain)
        else:
            t_plain, t_conditioned = timed(plain), timed(conditioned)
        plain_times.append(t_plain)
        conditioned_times.append(t_conditioned)
        ratios.append(t_conditioned / t_plain)
    flop_ratio = flops(conditioned) / flops(plain)
    print(
        f"{name}: median time ratio {statistics.median(ratios):.4f} over {pairs} pairs "
        f"(plain {statistics.median(plain_times):.3f} s, conditioned "
        f"{statistics.median(conditioned_times):.3f} s, ratios {min(ratios):.3f}-"
        f"{max(ratios):.3f}); FLOP ratio {flop_ratio:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="interleaved pairs per figure")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    plain = GPT2LMHeadModel(config)
    conditioned = RewardConditionedLM.from_base(copy.deepcopy(plain))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GPT-2 small shape")

    input_ids = torch.randint(0, config.vocab_size, (8, 128))
    rewards = torch.linspace(-1.0, 1.0, 8)

    def train_step(model, **extra):
        def step():
            model.zero_grad(set_to_none=True)
            model(input_ids, labels=input_ids, **extra).loss.backward()

        return step

    plain.train(), conditioned.train()
    compare(
        "train step 8x128",
        train_step(plain),
        train_step(conditioned, target_rewards=rewards),
        args.pairs,
    )

    prompts = torch.randint(0, config.vocab_size, (4, 64))
    settings = {"max_new_tokens": 32, "min_new_tokens": 32, "do_sample": False, "pad_token_id": 0}

    def generation(model, **extra):
        def run():
            with torch.no_grad():
                output = model.generate(prompts, **settings, **extra)
            assert output.shape == (4, 96)

        return run

    plain.eval(), conditioned.eval()
    compare(
        "greedy 32 tokens x 4 prompts",
        generation(plain),
        generation(conditioned, target_rewards=rewards[:4]),
        args.pairs,
    )


if __name__ == "__main__":
    main()

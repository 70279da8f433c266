"""fp32 noise floor of the invariant tests on SmolLM2-135M, against the error of real bugs.

On the inputs of tests/test_modeling.py (the `conditioned` fixture's model: the real base, a
reward map drawn with std INIT_RANGE, seed 0), prints the largest |logit difference| between
computations the tests require to agree (alone vs padded, cached vs recomputed, ...), then the
difference two position bugs cause (explicit positions that ignore left padding; text positions
not shifted past the slot), each as a multiple of LOGIT_TOLERANCE["smollm2"]. CPU, one thread.

    snakemake --cores 2 data/models/smollm2-135m   # once
    PYTHONPATH=src python tests/benchmarks/bench_smollm2_noise.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import INIT_RANGE, LOGIT_TOLERANCE, SMOLLM2, SMOLLM2_BUILD  # noqa: E402
from test_modeling import REWARDS, encode, greedy, pad, real_part  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from rewardcond.batching import RewardConditionedCollator, encode_example  # noqa: E402
from rewardcond.modeling import RewardConditionedLM  # noqa: E402

TOLERANCE = LOGIT_TOLERANCE["smollm2"]


def largest_difference(model, rows, pad_id, side, position_ids=None):
    """Max |logits alone - logits of the same row in a padded batch| over rows and tokens."""
    input_ids, attention_mask, _ = pad(rows, pad_id, side)
    logits = model(
        input_ids, attention_mask=attention_mask, target_rewards=REWARDS, position_ids=position_ids
    ).logits
    alone = [
        model(torch.tensor([row]), target_rewards=REWARDS[i : i + 1]).logits[0]
        for i, row in enumerate(rows)
    ]
    return max(
        (real_part(logits, attention_mask, i) - expected).abs().max().item()
        for i, expected in enumerate(alone)
    )


def show(name, value):
    print(f"{name:<58} {value:10.3g}")


def report(name, difference):
    print(f"{name:<58} {difference:10.3g}  {difference / TOLERANCE:10.3g} x tolerance")


@torch.no_grad()
def noise(model, tokenizer, rows):
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        for side in ("left", "right"):
            _, _, positions = pad(rows, tokenizer.pad_token_id, side)
            report(
                f"padded {side} vs alone ({implementation})",
                largest_difference(model, rows, tokenizer.pad_token_id, side),
            )
            report(
                f"padded {side} vs alone, explicit positions ({implementation})",
                largest_difference(model, rows, tokenizer.pad_token_id, side, positions),
            )
    model.set_attn_implementation("sdpa")
    input_ids, attention_mask, _ = pad(rows, tokenizer.pad_token_id, "left")
    _, logits = greedy(model, input_ids, attention_mask)
    alone = [
        greedy(model, torch.tensor([row]), None, REWARDS[i : i + 1]) for i, row in enumerate(rows)
    ]
    report(
        "generate: left-padded batch vs alone (8 tokens)",
        max((logits[i] - alone[i][1][0]).abs().max().item() for i in range(len(rows))),
    )
    top2 = logits.topk(2, -1).values
    show("smallest greedy margin (top-1 minus top-2 logit)", (top2[..., 0] - top2[..., 1]).min())
    _, uncached = greedy(model, input_ids, attention_mask, use_cache=False)
    sequence, mask, steps = input_ids, attention_mask, []
    for _ in range(8):
        step = model(sequence, attention_mask=mask, target_rewards=REWARDS).logits[:, -1]
        steps.append(step)
        sequence = torch.cat([sequence, step.argmax(-1, keepdim=True)], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    recomputed = torch.stack(steps, 1)
    report("generate with KV cache vs full recomputation", (logits - recomputed).abs().max().item())
    report(
        "generate without cache vs full recomputation", (uncached - recomputed).abs().max().item()
    )
    longest = torch.tensor(rows[:1])
    full = model(longest, target_rewards=REWARDS[:1]).logits[:, -1]
    last = model(longest, target_rewards=REWARDS[:1], logits_to_keep=1).logits[:, -1]
    report("logits_to_keep=1 vs all logits", (last - full).abs().max().item())


def loss_difference(model, tokenizer):
    """|model loss - hand-computed cross-entropy| (test_loss_equals_hand_computed_cross_entropy)."""
    pairs = [("TITLE: hi\n\nTL;DR:", " a messy roommate"), ("TL;DR:", " debt")]
    features = [encode_example(tokenizer, p, c, max_length=100) for p, c in pairs]
    batch = RewardConditionedCollator(tokenizer, padding_side="left")(features)
    with torch.no_grad():
        output = model(**batch, target_rewards=REWARDS[:2])
    terms = []
    for i, (prompt, completion) in enumerate(pairs):
        n_prompt = len(tokenizer(prompt)["input_ids"])
        targets = tokenizer(completion)["input_ids"] + [tokenizer.eos_token_id]
        logits = real_part(output.logits, batch["attention_mask"], i)
        predicted = logits[n_prompt - 1 : n_prompt - 1 + len(targets)]
        terms.append(-F.log_softmax(predicted, -1)[range(len(targets)), targets])
    return abs(output.loss.item() - torch.cat(terms).mean().item())


@torch.no_grad()
def bugs(model, tokenizer, rows):
    input_ids, attention_mask, positions = pad(rows, tokenizer.pad_token_id, "left")
    ignoring_padding = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    report(
        "BUG positions ignore left padding",
        largest_difference(model, rows, tokenizer.pad_token_id, "left", ignoring_padding),
    )
    report(
        "BUG text positions not shifted past the slot",
        largest_difference(model, rows, tokenizer.pad_token_id, "left", positions - 1),
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(1)
    if not SMOLLM2.is_dir():
        sys.exit(f"{SMOLLM2} is missing; build it with `{SMOLLM2_BUILD}`")
    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    torch.manual_seed(0)
    model = RewardConditionedLM.from_base(AutoModelForCausalLM.from_pretrained(SMOLLM2)).eval()
    torch.nn.init.normal_(model.reward_embedding.weight, std=INIT_RANGE)
    torch.nn.init.normal_(model.reward_embedding.bias, std=INIT_RANGE)
    rows = encode(tokenizer)
    print(f"SmolLM2-135M, rows of {[len(row) for row in rows]} tokens, tolerance {TOLERANCE:g}")
    with torch.no_grad():
        largest = model(torch.tensor(rows[:1]), target_rewards=REWARDS[:1]).logits.abs().max()
    show("largest |logit|", largest)
    noise(model, tokenizer, rows)
    show(
        "|loss - hand-computed cross-entropy| (test allows 1e-6)", loss_difference(model, tokenizer)
    )
    bugs(model, tokenizer, rows)


if __name__ == "__main__":
    main()

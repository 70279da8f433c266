"""How much does the short pretraining of a tiny base buy? (not collected by pytest)

Builds the tiny base of a config entry (default: demo.yaml's `tiny-gpt2`) on the prepared
synthetic corpus with several pretraining budgets, with and without the repeated-post copy
documents (`pretraining.repeated_posts`), and scores each on held-out `valid` posts:
- `ref_loss`: teacher-forced loss (nats/token) of the reference summary + EOS after the prompt;
- greedy `TL;DR:` continuations (at most 48 tokens): gold reward, the share of the post's facts
  they state (`recall`), the share of stated facts that are the post's own (`precision`), and
  the share that end with EOS.
The references' own gold is printed as the anchor; `seconds` is wall time on this machine (noisy
when shared). Run from the repository root after the demo's data stage:

    PYTHONPATH=src python tests/benchmarks/bench_pretraining.py --steps 0 500 1000 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from rewardcond.artifacts import set_seed
from rewardcond.base_models.pretrain import PretrainingConfig, pretrain
from rewardcond.base_models.tiny import (
    build_model,
    pretraining_documents,
    tokenizer_corpus,
    train_tokenizer,
)
from rewardcond.data.synthetic import GoldReward


@torch.no_grad()
def reference_loss(model, tokenizer, prompts: list[str], references: list[str]) -> float:
    total, count = 0.0, 0
    for prompt, reference in zip(prompts, references, strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        target = tokenizer(reference)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt_ids + target])
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1]
        total += torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="sum")
        count += len(target)
    return float(total / count)


@torch.no_grad()
def greedy(model, tokenizer, prompts: list[str], batch_size: int = 50) -> tuple[list[str], list]:
    tokenizer.padding_side = "left"
    texts, finished = [], []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
        out = model.generate(
            **batch,
            max_new_tokens=48,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        for row in out[:, batch["input_ids"].shape[1] :].tolist():
            finished.append(tokenizer.eos_token_id in row)
            texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default="data/prepared/synthetic")
    parser.add_argument("--gold", default="data/raw/synthetic/gold.jsonl")
    parser.add_argument("--config", default="workflow/config/demo.yaml")
    parser.add_argument("--model", default="tiny-gpt2")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 250, 500, 1000])
    parser.add_argument("--repeated-posts", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--eval-posts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = yaml.safe_load(Path(args.config).read_text())
    spec = config["base_models"][args.model]
    template = config["prompt"]["template"]
    posts = pd.read_parquet(f"{args.prepared}/posts.parquet")
    completions = pd.read_parquet(f"{args.prepared}/completions.parquet")
    held_out = posts[posts["split"] == "valid"].head(args.eval_posts)
    prompts = [template.format(subreddit=r.subreddit, title=r.title, post=r.post)
               for r in held_out.itertuples()]  # fmt: skip
    gold = GoldReward.load(args.gold)
    ids = held_out["post_id"].tolist()
    print(f"references: gold {gold.score(ids, held_out['reference'].tolist()).mean():.3f}")
    rows = []
    for steps, repeated in [(s, bool(r)) for s in args.steps for r in args.repeated_posts]:
        set_seed(args.seed)
        tokenizer = train_tokenizer(tokenizer_corpus(posts, completions, template),
                                    vocab_size=spec["tokenizer"]["vocab_size"],
                                    model_max_length=512)  # fmt: skip
        model = build_model(spec["architecture"], spec["model_config"], tokenizer)
        budget = PretrainingConfig(
            **{**spec.get("pretraining", {}), "steps": steps, "repeated_posts": repeated}
        )
        documents = pretraining_documents(posts, template, repeated_posts=repeated)
        start = time.perf_counter()
        if steps:
            pretrain(model, tokenizer, documents, budget, seed=args.seed)
        seconds = time.perf_counter() - start
        model.eval()
        loss = reference_loss(model, tokenizer, prompts, held_out["reference"].tolist())
        texts, finished = greedy(model, tokenizer, prompts)
        parts = gold.breakdown(ids, texts)
        stated = parts["covered"] + parts["repeated"] + parts["wrong"]
        rows.append({
            "steps": steps, "repeated_posts": repeated, "seconds": round(seconds, 1),
            "ref_loss": loss,
            "gold": parts["gold"].mean(), "recall": (parts["covered"] / parts["n_facts"]).mean(),
            "precision": (parts["covered"] + parts["repeated"]).sum() / max(1, stated.sum()),
            "eos_rate": sum(finished) / len(finished),
        })  # fmt: skip
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"), flush=True)
        print("sample:", repr(texts[0]), "| reference:", repr(held_out["reference"].iloc[0]))


if __name__ == "__main__":
    main()

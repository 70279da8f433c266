"""Benchmark: prepare 180,000 comparisons in OpenAI's format (about the real train + validation).

Generates raw files shaped like the real ones (comparison lines with a ~1,300-character post and
two summaries, six comparisons per post, plus tldr_3_filtered with the real split sizes), then
runs `prepare` in fresh processes, interleaved with a baseline that only parses every line with
`json.loads` (the work no prepare can avoid). Prints the median wall time and peak RSS of each,
their ratio, and the issue's targets (<= 30 s, <= 2 GB on 2 cores).

    PYTHONPATH=src python tests/benchmarks/bench_prepare.py [--comparisons 180000] [--repeats 3]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rewardcond.artifacts import sha256_file

TLDR_SIZES = {"train": 116_722, "valid": 6_447, "test": 6_553}  # tldr_3_filtered, as released
POLICIES = ["ref", "sup4_6b_t0.7", "sup4_ppo_rm3_kl10", "pretrain_12b_t.5", "sup4_12b_t0.7"]

CHILD = """
import json, resource, sys, time
from pathlib import Path
mode, raw, out = sys.argv[1:4]
start = time.perf_counter()
if mode == "prepare":
    from rewardcond.data.prepare import prepare
    prepare(raw, out)
else:
    for name in json.loads((Path(raw) / "manifest.json").read_text())["files"]:
        with open(Path(raw) / name, encoding="utf-8") as handle:
            for line in handle:
                json.loads(line)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime}))
"""


def make_raw(root: Path, n_comparisons: int, per_post: int = 6, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(5000)] + ["the", "my", "and", "i", "to", "a", "is", "was"]
    text = " ".join(rng.choice(words, size=3_000_000))

    def passage(n_chars: int) -> str:
        start = int(rng.integers(0, len(text) - n_chars))
        return text[start : start + n_chars]

    n_comparison_posts = n_comparisons // per_post
    n_posts = max(sum(TLDR_SIZES.values()), n_comparison_posts)
    splits = rng.permutation(np.repeat(list(TLDR_SIZES), list(TLDR_SIZES.values())))
    files: dict[str, list[str]] = {}
    posts = []
    for i in range(n_posts):
        post = {
            "id": f"t3_{i:07x}",
            "subreddit": "relationships",
            "title": passage(70),
            "post": passage(int(rng.integers(600, 2000))),
        }
        posts.append(post)
        if i < len(splits):
            line = json.dumps({**post, "summary": " " + passage(120)})
            files.setdefault(f"datasets/tldr_3_filtered/{splits[i]}.jsonl", []).append(line)
    comparison_split = {"train": "train", "valid": "valid1", "test": "valid2"}
    for c in range(n_comparisons):
        index = c // per_post
        post = posts[index]
        split = comparison_split[splits[index]] if index < len(splits) else "train"
        pair = rng.choice(POLICIES, size=2, replace=False)
        record = {
            "info": {k: post[k] for k in ("id", "post", "title", "subreddit")},
            "summaries": [
                {"text": " " + passage(int(rng.integers(60, 250))), "policy": p, "note": None}
                for p in pair
            ],
            "choice": int(rng.integers(2)),
            "worker": f"worker{int(rng.integers(60))}",
            "batch": f"batch{3 + c % 18}",
            "split": split,
            "extra": {"confidence": int(rng.integers(1, 10))},
        }
        files.setdefault(f"dataset/comparisons/batch{3 + c % 18}.json", []).append(
            json.dumps(record)
        )
    entries = {}
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        entries[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    (root / "manifest.json").write_text(json.dumps({"source": "openai", "files": entries}))


def run(mode: str, raw: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(raw), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=180_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_into:
        make_raw(args.generate_into, args.comparisons)
        return
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        raw, out = Path(work) / "raw", Path(work) / "out"
        start = time.perf_counter()
        # in a child, so that this process stays small: a child's peak RSS counts its parent's
        generate = [sys.executable, __file__, "--comparisons", str(args.comparisons)]
        subprocess.run([*generate, "--generate-into", str(raw)], check=True)
        size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file()) / 2**20
        print(
            f"generated {args.comparisons} comparisons, {size:.0f} MiB of raw JSON "
            f"in {time.perf_counter() - start:.1f}s"
        )
        prepared, parsed = [], []
        for _ in range(args.repeats):  # interleaved pairs: the machine is noisy
            parsed.append(run("parse", raw, out))
            prepared.append(run("prepare", raw, out))
        report = json.loads((out / "report.json").read_text())
    seconds = statistics.median(r["seconds"] for r in prepared)
    baseline = statistics.median(r["seconds"] for r in parsed)
    rss = max(r["peak_rss_mb"] for r in prepared)
    cpu = statistics.median(r["cpu_seconds"] for r in prepared)
    ratios = [p["seconds"] / b["seconds"] for p, b in zip(prepared, parsed, strict=True)]
    print(
        f"prepared {report['comparisons']} comparisons, {report['posts']} posts, "
        f"{report['completions']} completions"
    )
    print(
        f"prepare: median {seconds:.1f}s (runs {[round(r['seconds'], 1) for r in prepared]}), "
        f"peak RSS {rss:.0f} MiB, CPU time (user + system, includes imports) median {cpu:.1f}s"
    )
    print(
        f"baseline json.loads of every line: median {baseline:.1f}s, peak RSS "
        f"{max(r['peak_rss_mb'] for r in parsed):.0f} MiB"
    )
    print(
        f"prepare / baseline time: median ratio {statistics.median(ratios):.2f} "
        f"(pairs {[round(r, 2) for r in ratios]})"
    )
    print(
        f"target <= 30 s: {'PASS' if seconds <= 30 else 'FAIL'}; "
        f"target <= 2 GB peak RSS: {'PASS' if rss <= 2048 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()

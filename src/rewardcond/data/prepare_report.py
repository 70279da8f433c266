"""The report of the `prepare` stage: what was read, kept, skipped and repaired, per file; the
tables' sizes; and, for a synthetic world, what its labels allow (Bayes-optimal accuracy)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from rewardcond.data.records import CONTENT_ID_PREFIX, ID_SOURCES
from rewardcond.data.synthetic import GoldReward, bayes_optimal_accuracy


def _counts(values: list) -> dict[str, int]:
    counts = Counter("none" if value is None else str(value) for value in values)
    return dict(sorted(counts.items()))


def prepare_report(
    manifest, raw_dir, on_bad_record, stats, records, posts, post_columns, comparisons, completions
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "source": manifest.get("source"),
        "raw_dir": str(raw_dir),
        "on_bad_record": on_bad_record,
        "lone_surrogates": "replace" if records.repair_surrogates else "bad_record",
        "files": [
            {
                "file": s.file,
                "kind": s.kind,
                "lines": s.lines,
                "records": s.records,
                "skipped": int(sum(s.skipped.values())),
                "skipped_by_reason": dict(s.skipped),
                **{f"id_from_{how}": s.assigned_ids[how] for how in ID_SOURCES},
                "repaired_lone_surrogates": s.repaired,
            }
            for s in stats
        ],
        "skipped_examples": records.examples,
        "repaired_examples": records.repaired_examples,
        "posts": len(post_columns["post_id"]),
        "posts_by_split": _counts(post_columns["split"]),
        "posts_by_comparison_split": _counts(post_columns["comparison_split"]),
        "posts_with_conflicting_text": len(posts.conflicts),
        "posts_in_several_comparison_splits": sum(
            len(s) > 1 for s in posts.comparison_splits.values()
        ),
        "posts_by_domain": _counts(post_columns["domain"]),
        "comparisons": len(comparisons["post_id"]),
        "comparisons_by_split": _counts(comparisons["split"]),
        "comparisons_by_domain": _counts(comparisons["domain"]),
        "comparisons_without_id": {
            how: sum(s.assigned_ids[how] for s in stats) for how in ID_SOURCES
        },
        "completions": len(completions["completion_id"]),
        "completions_by_source": _counts(completions["source"]),
        "completions_by_domain": _counts(completions["domain"]),
        "policies": _counts(completions["policy"]),
    }
    if "world" in manifest:
        report |= _gold_figures(raw_dir, manifest, comparisons)
    return report


def _gold_figures(raw_dir: Path, manifest: dict, comparisons: dict[str, list]) -> dict[str, Any]:
    gold = GoldReward.load(raw_dir / "gold.jsonl")
    temperature = manifest["world"]["label_temperature"]
    frame = pd.DataFrame({"split": comparisons["split"], "choice": comparisons["choice"]})
    frame["gold_0"] = gold.score(comparisons["post_id"], comparisons["summary_0"])
    frame["gold_1"] = gold.score(comparisons["post_id"], comparisons["summary_1"])
    accuracy, agreement = {}, {}
    for split, part in [("all", frame), *frame.groupby("split")]:
        accuracy[split] = bayes_optimal_accuracy(part["gold_0"], part["gold_1"], temperature)
        decided = part[part["gold_0"] != part["gold_1"]]
        preferred = (decided["gold_1"] > decided["gold_0"]).astype(int)
        agreement[split] = float((preferred == decided["choice"]).mean())
    return {
        "label_temperature": temperature,
        "bayes_optimal_accuracy": accuracy,
        "gold_label_agreement": agreement,
        "gold_ties": int((frame["gold_0"] == frame["gold_1"]).sum()),
    }


def report_markdown(report: dict[str, Any]) -> str:
    files = pd.DataFrame(report["files"]).drop(columns="skipped_by_reason")
    lines = [
        f"# Prepare report ({report['source']})",
        "",
        f"Raw folder `{report['raw_dir']}`, on_bad_record: `{report['on_bad_record']}`, "
        f"lone_surrogates: `{report['lone_surrogates']}`.",
        "",
        "## Files",
        "",
        files.to_markdown(index=False),
        "",
        "## Output",
        "",
        f"- posts: {report['posts']} by split {report['posts_by_split']}, by comparison split "
        f"{report['posts_by_comparison_split']}",
        f"- comparisons: {report['comparisons']} by split {report['comparisons_by_split']}, "
        f"by domain {report['comparisons_by_domain']}",
        f"- completions: {report['completions']} by source {report['completions_by_source']}, "
        f"by domain {report['completions_by_domain']}",
        f"- posts by domain (tldr: Reddit TL;DR; cnndm: CNN/DailyMail): "
        f"{report['posts_by_domain']}",
        f"- comparisons without `info.id`, given the id of the same tldr_3_filtered post: "
        f"{report['comparisons_without_id']['tldr_3_filtered']}; given a content id "
        f"(`{CONTENT_ID_PREFIX}...`): {report['comparisons_without_id']['content_hash']}",
        f"- posts whose text differs between files (first kept): "
        f"{report['posts_with_conflicting_text']}",
        f"- posts compared in several splits (counted as the most held-out): "
        f"{report['posts_in_several_comparison_splits']}",
    ]
    skipped = sum((Counter(entry["skipped_by_reason"]) for entry in report["files"]), Counter())
    lines += ["", "## Skipped records", ""]
    lines += [f"- {reason}: {n}" for reason, n in sorted(skipped.items())] or ["None."]
    if report["skipped_examples"]:
        lines += ["", pd.DataFrame(report["skipped_examples"]).to_markdown(index=False)]
    repaired = sum(entry["repaired_lone_surrogates"] for entry in report["files"])
    lines += ["", "## Kept records with lone surrogates replaced by U+FFFD", ""]
    lines += [f"- records: {repaired}"]
    if report["repaired_examples"]:
        lines += ["", pd.DataFrame(report["repaired_examples"]).to_markdown(index=False)]
    if "bayes_optimal_accuracy" in report:
        table = pd.DataFrame(
            {
                "bayes_optimal_accuracy": report["bayes_optimal_accuracy"],
                "gold_label_agreement": report["gold_label_agreement"],
            }
        )
        lines += [
            "",
            "## Synthetic world",
            "",
            f"Labels are Bradley-Terry draws on gold with temperature "
            f"{report['label_temperature']}. The Bayes-optimal accuracy is the expected accuracy "
            "of a predictor that knows gold; the agreement is the share of labels (gold ties "
            f"excluded: {report['gold_ties']}) that chose the higher-gold summary.",
            "",
            table.rename_axis("split").to_markdown(floatfmt=".4f"),
        ]
    return "\n".join(lines) + "\n"

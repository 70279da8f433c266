"""After a finished demo run, an edit reruns exactly the stages it affects.

Needs a checkout in which `snakemake --cores 2 --configfile workflow/config/demo.yaml` has
finished; CI runs the demo first and passes its folder as REWARDCOND_FINISHED_DEMO. Each test
edits a fresh copy of it and asks Snakemake what a dry run would do.
"""

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FINISHED_DEMO = os.environ.get("REWARDCOND_FINISHED_DEMO")

pytestmark = pytest.mark.skipif(
    not FINISHED_DEMO,
    reason="set REWARDCOND_FINISHED_DEMO to a checkout with a finished demo run (CI does)",
)


def jobs_to_run(workdir: Path, *configfiles: Path) -> dict[str, int]:
    """The jobs a dry run would run, counted by rule (Snakemake's "Job stats" table)."""
    command = [sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules"]
    command += ["--configfile", "workflow/config/demo.yaml", *map(str, configfiles)]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=True)
    rows = re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE)
    return {rule: int(count) for rule, count in rows if rule not in ("job", "total")}


@pytest.fixture
def demo(tmp_path) -> Path:
    copy = tmp_path / "checkout"
    shutil.copytree(FINISHED_DEMO, copy, symlinks=True, ignore=shutil.ignore_patterns("logs"))
    assert jobs_to_run(copy) == {}, f"the demo run in {FINISHED_DEMO} is not finished"
    return copy


def n_methods(demo: Path) -> int:
    return len(list((demo / "results/demo/generations").glob("*.parquet")))


def edit(module: Path) -> None:
    # Snakemake compares checksums of small inputs, so a mere `touch` is (rightly) no edit.
    module.write_text(module.read_text() + "\n# an edit\n")


def test_editing_the_report_module_reruns_only_publishing(demo):
    edit(demo / "src/rewardcond/report/render.py")
    assert jobs_to_run(demo) == {"publish": 1, "all": 1}


def test_editing_an_evaluation_module_reruns_the_stages_that_use_it(demo):
    edit(demo / "src/rewardcond/evaluation/metrics.py")
    # The judges read the evaluated rows, and the per-example release reads both.
    assert jobs_to_run(demo) == {
        "evaluate": n_methods(demo),
        "judge": n_methods(demo),
        "examples": 1,
        "score_references": 1,
        "publish": 1,
        "all": 1,
    }


def test_editing_the_statistics_reruns_the_tables_that_use_them(demo):
    edit(demo / "src/rewardcond/stats.py")
    # The judge jobs import the statistics too (an llm judge's win rates and their intervals are
    # computed there), so with the demo's gold judge they rerun as well: a known cost, cheap for
    # gold and a cached llm judge, GPU minutes for a reward-model judge.
    assert jobs_to_run(demo) == {
        "reward_model_accuracy": 1,
        "judge": n_methods(demo),
        "judge_references": 1,
        "judge_agreement": 1,
        "examples": 1,
        "publish": 1,
        "all": 1,
    }


def test_editing_one_methods_module_reruns_only_that_methods_jobs(demo):
    edit(demo / "src/rewardcond/methods/dpo.py")
    assert jobs_to_run(demo) == {
        "trainset": 1,
        "train": 1,
        "generate_summaries": 1,
        "merge_generations": 1,
        "evaluate": 1,
        "kl": 1,
        "judge": 1,
        "examples": 1,
        "publish": 1,
        "all": 1,
    }
    (demo / "src/rewardcond/methods/dpo.py").write_text(
        (demo / "src/rewardcond/methods/dpo.py").read_text().removesuffix("\n# an edit\n")
    )
    edit(demo / "src/rewardcond/methods/bon.py")  # bon4 and bon16 are one family, one module
    assert jobs_to_run(demo) == {
        "generate_best_of_n": 2,
        "evaluate": 2,
        "kl_best_of_n": 2,
        "judge": 2,
        "examples": 1,
        "publish": 1,
        "all": 1,
    }


def test_shard_outputs_are_deleted_once_merged(demo):
    results = demo / "results/demo"
    assert (results / "scored/completions.parquet").is_file()
    assert n_methods(demo) > 0
    assert list(results.glob("scored/shards/*")) == []
    assert list(results.glob("generations/shards/*")) == []


def test_changing_a_publishing_parameter_reruns_only_publishing(demo, tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("evaluate:\n  bootstrap_samples: 999\n")
    # judges.csv has intervals too; no judge scores anything again (the demo has no llm judge).
    assert jobs_to_run(demo, override) == {"judge_agreement": 1, "publish": 1, "all": 1}


def test_changing_a_train_setting_reruns_training_and_what_follows_only(demo, tmp_path):
    override = tmp_path / "override.yaml"
    # weight_decay: a `train` key that no method overrides, so every trained method retrains.
    override.write_text("train:\n  weight_decay: 0.01\n")
    jobs = jobs_to_run(demo, override)
    # Best-of-N samples from the retrained sft model, so it generates again too; every KL from
    # sft is measured again.
    assert set(jobs) == {
        "train",
        "generate_summaries",
        "merge_generations",
        "generate_best_of_n",
        "evaluate",
        "kl",
        "kl_best_of_n",
        "judge",
        "examples",
        "publish",
        "all",
    }
    assert jobs["train"] == jobs["merge_generations"] == jobs["kl"]
    assert jobs["evaluate"] == jobs["merge_generations"] + jobs["generate_best_of_n"]
    assert jobs["evaluate"] == n_methods(demo) == jobs["kl"] + jobs["kl_best_of_n"]
    assert jobs["judge"] == jobs["evaluate"]


def test_the_html_report_holds_the_verdict_and_the_reward_model_accuracy(demo):
    # README's command for the demo, as written there; no --cores needed.
    command = [sys.executable, "-m", "snakemake", "--report", "report.html"]
    command += ["--configfile", "workflow/config/demo.yaml"]
    subprocess.run(command, cwd=demo, capture_output=True, text=True, check=True)
    # The captions are HTML (docutils escapes "@" and the like): compare unescaped text.
    page = html.unescape((demo / "report.html").read_text(encoding="utf-8"))
    report = (demo / "results/demo/REPORT.md").read_text(encoding="utf-8")
    verdict = report.split("## Verdict\n", 1)[1].split("\n## ", 1)[0]
    for line in verdict.splitlines():
        assert line in page, line
    assert '"name": "accuracy.csv"' in page and "Accuracy of the reward model" in page

"""The default config rehearsed end to end (issue 14 §2): `workflow/config/config.yaml` itself,
with only what this machine forces overridden, on every real branch of the DAG.

- data: `download` over HTTP from a loopback mirror of OpenAI's blob storage (real-layout files
  with invented text, tests/openai_mirror.py) with the manifest and checksums, then `prepare` on
  the `openai` source;
- hub models: the project's own hub code loads `openai-community/gpt2` and
  `OpenAssistant/reward-model-deberta-v3-large-v2` at the revisions the config pins, with
  `HF_HUB_OFFLINE=1` and a local Hugging Face cache holding tiny random stand-ins in the hub's
  cache layout (tests/hub_cache.py);
- every method of the default `methods:` list, generation, evaluation without a gold function,
  the default judge (the DeBERTa reward model, issue 17) on every generation, every reference and
  the valid2 comparisons, the examples release and publishing: first the default config
  (`reward_model.kind: train`, the proxy trained here), then the same with an `llm` judge added
  against a local mock chat-completions server (only the judging reruns), then
  `reward_model.kind: pretrained` (the DeBERTa as the proxy, so no judge).

Snakemake runs as a subprocess with `--cores 2` in a temporary copy of the checkout (as
.ci/run does for the demo). The later rehearsals rerun in the same copy, so the download, the
prepared data and the GPT-2 base are shared and only what depends on the changed keys reruns
(Snakemake's own rerun logic decides). On failure the failing jobs' logs are printed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hub_cache import DEBERTA_RM_ID, GPT2_ID, populate_default_hub_cache
from mock_chat_server import MockChatServer
from openai_mirror import EDIT_FILE, MirrorServer, build_mirror, write_mirror

from rewardcond.artifacts import sha256_file
from rewardcond.stats import MIN_PROMPTS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())
RUN = CONFIG["run"]
RESULTS = f"results/{RUN}"
METHODS = CONFIG["methods"]
CONDITIONED = ("scalar", "text")  # the default methods that take a target reward
N_TARGETS = len(CONFIG["trainset"]["targets"]["quantiles"]) + len(
    CONFIG["trainset"]["targets"]["beyond_max_sd"]
)
# The fewest prompts a figure is ranked on, so that the comparisons table is not empty.
N_PROMPTS = MIN_PROMPTS
TIMEOUT_S = 900

pytestmark = pytest.mark.slow

# The overlay: only what this machine forces, each key with its reason. Everything else (the
# data files, the pinned hub models, the methods, templates, lengths, learning rates, decoding)
# is the default config's own.
OVERLAY = """\
# Only what the CI machine forces; every other key is workflow/config/config.yaml's.
device: cpu  # no GPU here; also lets the jobs run side by side on the 2 cores
data:
  base_url: {base_url}  # a loopback mirror: no network
  sha256:  # the digests of the files served (the config pins those of OpenAI's real files)
{sha256}
train:  # sizes: a few optimizer steps per method on 2 CPU cores
  max_steps: 3
  global_batch_size: 4
  per_device_batch_size: 4
  overrides:
    dpo:
      global_batch_size: 4  # the config's dpo override asks for 64 pairs a step
    rloo:  # the config's rloo override asks for 980 steps of 2048 summaries
      global_batch_size: 4
      max_steps: 3
generate:
  n_prompts: {n_prompts}  # sizes: a few valid2 prompts
  max_new_tokens: 16  # sizes: short generations
scale:
  train_processes: 1  # one CPU process
"""
OVERLAY += """\
reward_model:
  train:
    global_batch_size: 16  # sizes: a few steps over the mirror's train comparisons
    per_device_batch_size: 16
"""
# The second rehearsal: the default judge plus an llm judge, against a loopback mock server.
LLM_JUDGE = """\
evaluate:
  judges:
    - name: deberta  # the default judge, as the config has it (a list is replaced, not merged)
      kind: reward_model
      hub_id: {hub_id}
      revision: {revision}
      input_format: pair
      max_length: 512
    - name: gpt
      kind: llm
      model: judge-model
      base_url: {base_url}
      api_key_env: REHEARSAL_JUDGE_KEY
      max_retries: 2
      backoff_initial_s: 0.01
"""
# The third: the DeBERTa as the proxy (reward_model.kind: pretrained), so it cannot be the judge.
PRETRAINED_RM = """\
reward_model:
  kind: pretrained  # the DeBERTa hub reward model as the proxy
evaluate:
  judges: []  # the default judge is that very model
  main_judge: null
"""
JUDGE_KEY = "sk-rehearsal-judge"


def checkout_copy(dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of the checkout (the code under test, with
    no results, data or caches of earlier runs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def failed_job_logs(output: str, workdir: Path) -> str:
    """The logs that Snakemake names for its failed jobs, each with its last 80 lines."""
    parts = []
    for block in re.split(r"(?=Error in rule )", output)[1:]:
        rule = block.split(":", 1)[0]
        for log in re.findall(r"log: (\S+?)(?: \(check log file\(s\) for error details\))?$",
                              block, flags=re.MULTILINE):  # fmt: skip
            path = workdir / log.rstrip(",")
            text = path.read_text(errors="replace") if path.is_file() else "(no log file)"
            tail = "\n".join(text.splitlines()[-80:])
            parts.append(f"===== {rule}: {log}\n{tail}")
    return "\n".join(parts) or "(no failed job named a log)"


def run_snakemake(workdir: Path, overlay: Path, env: dict) -> float:
    """`snakemake --cores 2` with the default config + `overlay`; returns its wall seconds."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(overlay)]
    start = time.monotonic()
    result = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    seconds = time.monotonic() - start
    if result.returncode != 0:
        output = result.stdout + result.stderr
        pytest.fail(
            f"snakemake failed ({result.returncode}) after {seconds:.0f} s\n"
            f"{failed_job_logs(output, workdir)}\n===== snakemake output (tail)\n"
            + "\n".join(output.splitlines()[-60:]),
            pytrace=False,
        )
    print(f"rehearsal {overlay.stem}: {seconds:.0f} s")
    return seconds


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The mirror, the hub cache, a checkout copy and the environment both runs share."""
    tmp = tmp_path_factory.mktemp("rehearsal")
    mirror = build_mirror(CONFIG["data"]["files"])
    write_mirror(tmp / "mirror", mirror)
    corpus = [post.text for post in mirror.posts] + [post.reference for post in mirror.posts]
    revisions = {
        GPT2_ID: CONFIG["base_models"]["gpt2"]["revision"],
        DEBERTA_RM_ID: CONFIG["reward_model"]["pretrained"]["revision"],
    }
    populate_default_hub_cache(tmp / "hf" / "hub", corpus, revisions)
    workdir = checkout_copy(tmp / "checkout")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "SNAKEMAKE_"))
    }
    env |= {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp / "hf"),
        "HF_HUB_CACHE": str(tmp / "hf" / "hub"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with MirrorServer(tmp / "mirror") as server:
        sha256 = "\n".join(f"    {name}: {digest}" for name, digest in mirror.sha256.items())
        overlay = OVERLAY.format(base_url=server.base_url, sha256=sha256, n_prompts=N_PROMPTS)
        (tmp / "default.yaml").write_text(overlay)
        (tmp / "pretrained.yaml").write_text(overlay + PRETRAINED_RM)
        yield {"mirror": mirror, "workdir": workdir, "env": env, "tmp": tmp, "times": {},
               "overlay": overlay}  # fmt: skip


def assert_no_gold(table: pd.DataFrame) -> None:
    """A table's gold columns exist and are empty: NaN figures, zero counts, and notes (where a
    table has them) that give the reason."""
    gold = [column for column in table.columns if "gold" in column]
    assert gold, list(table.columns)
    counts = [column for column in gold if column.endswith("_n")]
    notes = [column for column in gold if column.endswith("_note")]
    assert (table[counts] == 0).all().all(), table[counts]
    assert (table[notes] == "undefined: no gold rewards").all().all(), table[notes]
    assert table[sorted(set(gold) - set(counts) - set(notes))].isna().all().all(), table[gold]


def assert_published(workdir: Path, scorer_identity: str) -> None:
    """Every table and REPORT.md written, for every method x target, with empty gold columns."""
    results = workdir / RESULTS
    scored = pd.read_parquet(results / "scored/completions.parquet")
    prepared = pd.read_parquet(workdir / "data/prepared/openai/completions.parquet")
    assert len(scored) == len(prepared)
    assert scored["reward"].notna().all()
    assert set(scored["reward_model"]) == {scorer_identity}
    accuracy = pd.read_csv(results / "reward_model/accuracy.csv")
    assert len(accuracy) > 0

    for method in METHODS:
        generations = pd.read_parquet(results / f"generations/{method}.parquet")
        targets = N_TARGETS if method in CONDITIONED else 1
        assert generations.groupby("target_name").size().to_dict() == (
            dict.fromkeys(generations["target_name"].unique(), N_PROMPTS)
        ), method
        assert generations["target_name"].nunique() == targets, method
        evaluated = pd.read_parquet(results / f"evaluated/{method}.parquet")
        assert len(evaluated) == len(generations), method
        assert evaluated["gold"].isna().all(), method

    summary = pd.read_csv(results / "tables/summary.csv")
    expected = {m: N_TARGETS if m in CONDITIONED else 1 for m in METHODS}
    assert summary.groupby("method").size().to_dict() == expected
    assert_no_gold(summary)

    correlation = pd.read_csv(results / "tables/correlation.csv")
    assert sorted(correlation["method"]) == sorted(CONDITIONED)
    assert_no_gold(correlation)

    winrate = pd.read_csv(results / "tables/winrate.csv")
    assert sorted(winrate["method"]) == sorted(METHODS)
    assert_no_gold(winrate)

    comparisons = pd.read_csv(results / "tables/comparisons.csv")
    assert len(comparisons) > 0
    if "metric" in comparisons:
        assert not comparisons["metric"].astype(str).str.contains("gold").any()

    for plot in ("calibration", "reward_distribution", "overoptimisation", "winrate"):
        assert (results / f"plots/{plot}.png").stat().st_size > 0
    report = (results / "REPORT.md").read_text()
    assert "gold" not in report.lower(), [
        line for line in report.splitlines() if "gold" in line.lower()
    ]


def assert_judged(workdir: Path, judges: dict[str, str], proxy: str) -> None:
    """Every generation and reference judged by every judge (`judges`: name -> kind), the
    judges' agreement table with the proxy's row first, and the examples release."""
    results = workdir / RESULTS
    columns = [f"judge_{name}" for name in judges]
    keys = ["method", "post_id", "target_name", "sample"]
    n_rows = 0
    for method in METHODS:
        evaluated = pd.read_parquet(results / f"evaluated/{method}.parquet")
        judged = pd.read_parquet(results / f"judged/{method}.parquet")
        assert list(judged.columns) == [*keys, *columns], method
        assert judged[keys].equals(evaluated[keys]), method
        for name, kind in judges.items():
            values = judged[f"judge_{name}"]
            if kind == "llm":
                assert set(values.dropna()) <= {0.0, 0.5, 1.0} and values.notna().all(), method
                summary = json.loads((results / f"judges/{name}/{method}.json").read_text())
                assert summary["n_rows"] == len(judged) and summary["n_malformed"] == 0
            else:
                nonempty = evaluated["text"].str.strip() != ""
                assert np.isfinite(values[nonempty]).all(), method
        n_rows += len(evaluated)
    references = pd.read_parquet(results / "judged/references.parquet")
    assert list(references.columns) == ["post_id", *columns] and len(references) == N_PROMPTS
    table = pd.read_csv(results / "tables/judges.csv")
    assert table["judge"].tolist() == ["proxy", *judges]
    assert table["model"].iloc[0] == proxy
    assert (table["n"] > 0).all() and table["agreement"].between(0, 1).all(), table
    examples = pd.read_parquet(results / "tables/examples.parquet")
    assert len(examples) == n_rows
    assert [column for column in examples.columns if column.startswith("judge_")] == columns
    assert examples["proxy_reward"].notna().sum() > 0


def assert_main_judge(workdir: Path, name: str | None) -> None:
    """The verdict, comparisons.csv, matched_kl.csv and overoptimisation.csv take their held-out
    side from `evaluate.main_judge` (issue 17 §1): named `name` and with finite figures; without
    a judge (`name` None) they say the proxy only, with no judge column and no flag."""
    results = workdir / RESULTS
    verdict = (results / "REPORT.md").read_text().split("## Verdict\n")[1].split("\n## ")[0]
    comparisons = pd.read_csv(results / "tables/comparisons.csv")
    matched = pd.read_csv(results / "tables/matched_kl.csv")
    flags = pd.read_csv(results / "tables/overoptimisation.csv")
    figures = ["difference", "ci_low", "ci_high"]
    if name is None:
        assert verdict.startswith("- No held-out judge in this run (`evaluate.judges` is empty)")
        assert not comparisons["metric"].str.startswith("judge_").any()
        assert matched["metric"].tolist() == ["achieved_reward"]
        assert "overoptimised" not in flags.columns
        assert not any(column.startswith("judge_") for column in flags.columns)
        return
    assert verdict.startswith(f"- Held-out judge: **{name}** (kind reward_model,"), verdict[:200]
    judged = [line for line in verdict.splitlines() if f"{name} score" in line]
    assert judged, verdict
    assert not [line for line in judged if "n/a" in line or "nan" in line], judged
    metric = f"judge_{name}_mean"
    rows = comparisons[comparisons["metric"] == metric]
    assert len(rows) > 0, comparisons["metric"].unique()
    assert np.isfinite(rows[[*figures, "method_value", "other_value"]]).all().all(), rows
    assert matched["metric"].tolist() == [metric, "achieved_reward"]
    assert np.isfinite(matched[figures]).all().all(), matched
    columns = [f"{metric}_difference", f"{metric}_difference_ci_low",
               f"{metric}_difference_ci_high"]  # fmt: skip
    assert len(flags) == len(pd.read_csv(results / "tables/summary.csv")) - 1  # all but sft
    assert np.isfinite(flags[columns]).all().all(), flags
    assert flags["overoptimised"].notna().all()
    title = (results / "tables/overoptimisation.md").read_text().splitlines()[0]
    assert f"held-out judge {name}" in title, title


def test_default_config(rehearsal):
    workdir, mirror = rehearsal["workdir"], rehearsal["mirror"]
    rehearsal["times"]["default"] = run_snakemake(
        workdir, rehearsal["tmp"] / "default.yaml", rehearsal["env"]
    )

    manifest = json.loads((workdir / "data/raw/openai/manifest.json").read_text())
    assert list(manifest["files"]) == CONFIG["data"]["files"]
    for name, entry in manifest["files"].items():
        assert entry["downloaded"] is True and entry["sha256"] == mirror.sha256[name], name
        assert (workdir / "data/raw/openai" / name).read_bytes() == mirror.files[name], name

    report = json.loads((workdir / "data/prepared/openai/report.json").read_text())
    by_file = {entry["file"]: entry for entry in report["files"]}
    # Every record served is kept: the records of edit_b2_eval_test without info.id get the id of
    # their tldr_3_filtered post, and the summary with half an emoji is kept with U+FFFD.
    for name, records in mirror.comparisons.items():
        entry = by_file[name]
        assert (entry["lines"], entry["records"], entry["skipped"]) == (records, records, 0), name
    assert sum(entry["skipped"] for entry in report["files"]) == 0
    assert report["comparisons"] == sum(mirror.comparisons.values())
    assert by_file[EDIT_FILE]["id_from_tldr_3_filtered"] == mirror.comparisons[EDIT_FILE]
    assert sum(entry["repaired_lone_surrogates"] for entry in report["files"]) == 1

    base = json.loads((workdir / "data/models/gpt2/manifest.json").read_text())
    assert base["params"]["hub_id"] == GPT2_ID
    assert base["identity"] == f"{GPT2_ID}@{CONFIG['base_models']['gpt2']['revision']}"

    # the proxy: the paper's recipe, trained here; the judge: the pinned DeBERTa from the hub
    proxy = (
        f"trained:{sha256_file(workdir / RESULTS / 'reward_model/model/model.safetensors')[:16]}"
    )
    assert_published(workdir, proxy)
    (judge,) = CONFIG["evaluate"]["judges"]
    hub = json.loads(
        (workdir / "data/hub_models/OpenAssistant--reward-model-deberta-v3-large-v2"
         / "hub_manifest.json").read_text()
    )  # fmt: skip
    assert (hub["hub_id"], hub["revision"]) == (judge["hub_id"], judge["revision"])
    assert_judged(workdir, {"deberta": "reward_model"}, proxy)
    assert_main_judge(workdir, "deberta")


def test_default_config_with_an_llm_judge_added(rehearsal):
    workdir, tmp = rehearsal["workdir"], rehearsal["tmp"]
    if "default" not in rehearsal["times"]:
        pytest.skip("the default rehearsal did not run (this one reuses its run)")
    evaluated = sorted((workdir / RESULTS / "evaluated").glob("*.parquet"))
    before = [path.stat().st_mtime_ns for path in evaluated]
    (judge,) = CONFIG["evaluate"]["judges"]
    with MockChatServer("longer") as server:
        overlay = rehearsal["overlay"] + LLM_JUDGE.format(
            hub_id=judge["hub_id"], revision=judge["revision"], base_url=server.base_url
        )
        (tmp / "llm.yaml").write_text(overlay)
        env = rehearsal["env"] | {"REHEARSAL_JUDGE_KEY": JUDGE_KEY}
        rehearsal["times"]["llm"] = run_snakemake(workdir, tmp / "llm.yaml", env)
        requests = list(server.requests)
    assert [path.stat().st_mtime_ns for path in evaluated] == before  # only the judging reran
    assert requests and {request["auth"] for request in requests} == {f"Bearer {JUDGE_KEY}"}
    proxy = pd.read_csv(workdir / RESULTS / "tables/judges.csv")["model"].iloc[0]
    assert_judged(workdir, {"deberta": "reward_model", "gpt": "llm"}, proxy)
    cache = list((workdir / RESULTS / "judges/gpt/cache").rglob("*.json"))
    assert len(cache) == len({json.dumps(r["body"], sort_keys=True) for r in requests})
    assert not [
        path
        for path in workdir.rglob("*")
        if path.is_file()
        and path.suffix in (".json", ".log", ".md", ".csv")
        and JUDGE_KEY in path.read_text(errors="ignore")
    ]


def test_default_config_with_the_pretrained_reward_model_as_the_proxy(rehearsal):
    workdir = rehearsal["workdir"]
    if "default" not in rehearsal["times"]:
        pytest.skip("the default rehearsal did not run (it shares its data and base model)")
    shared = [
        workdir / "data/raw/openai/manifest.json",
        workdir / "data/prepared/openai/report.json",
        workdir / "data/models/gpt2/manifest.json",
    ]
    before = [path.stat().st_mtime_ns for path in shared]
    rehearsal["times"]["pretrained"] = run_snakemake(
        workdir, rehearsal["tmp"] / "pretrained.yaml", rehearsal["env"]
    )
    assert [path.stat().st_mtime_ns for path in shared] == before  # shared, not rebuilt
    pinned = CONFIG["reward_model"]["pretrained"]
    identity = f"{pinned['hub_id']}@{pinned['revision']}"
    assert_published(workdir, identity)
    assert_judged(workdir, {}, identity)
    assert_main_judge(workdir, None)
    # README "Results of a run": the tables and plots bundled into one HTML report
    report = rehearsal["tmp"] / "report.html"
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--report", str(report)]
    command += ["--configfile", str(rehearsal["tmp"] / "pretrained.yaml")]
    result = subprocess.run(command, cwd=workdir, env=rehearsal["env"], capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 0
    print("rehearsal wall times (s):", rehearsal["times"])

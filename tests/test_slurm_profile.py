"""The SLURM profile as users run it (README "A SLURM cluster", issue 20).

- The profile's one list of GPU rules holds every rule that asks for a GPU.
- A dry run of the real experiment plans the jobs we mean to submit; it runs with SLURM commands
  that all fail, so a dry run provably needs no SLURM installation (CI has none).
- The README's command itself, `snakemake --workflow-profile profiles/slurm`, not dry, with the
  SITE lines filled in, in a copy of the checkout: stand-in `sbatch`, `sacct`, `sacctmgr`,
  `scontrol`, `sinfo`, `squeue` and `srun` record their arguments; `sbatch` writes the job's
  declared outputs (stubs that the local merge rules can read) and `sacct` reports every
  submitted job as COMPLETED, so that every job is submitted and the run ends. The rules that need
  the network run for real on the "login node", from local stand-ins: raw files already in
  place, and a local Hugging Face cache in the hub's layout with the hub unreachable.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hub_cache import cache_tiny_gpt2, cache_tiny_reward_model, closed_port

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
CONFIG = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())
METHODS = CONFIG["methods"]
# Best-of-N trains nothing and samples from the sft model in one job of its own.
TRAINED = [method for method in METHODS if not re.fullmatch(r"bon[0-9]+", method)]
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "sacctmgr", "sinfo", "scontrol", "srun")
# The rules whose code reaches the network: OpenAI's blob storage, the hub, PyPI.
NETWORK_RULES = {"download", "download_base_model", "download_hub_model"}
RM_FOLDER = "data/hub_models/" + CONFIG["reward_model"]["pretrained"]["hub_id"].replace("/", "--")
# What a user writes into the SITE lines.
SITE = {"slurm_account": "rc_proj", "slurm_partition": "cpu", "gpu_partition": "gpu",
        "gpu_model": "h100"}  # fmt: skip


def profile_variables() -> dict:
    """The profile's `__variables__` (the GPU and CPU rule tables) as plain YAML."""
    return yaml.safe_load(PROFILE.read_text())["__variables__"]


def declared_gpu_rules() -> set[str]:
    """Rules of workflow/rules/*.smk whose `resources:` ask for a `gpu`."""
    rules = set()
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule \w+:)", path.read_text()):
            name = re.match(r"rule (\w+):", block)
            resources = re.search(r"\n    resources:\n((?:        .*\n)+)", block)
            if name and resources and re.search(r"^\s+gpu=", resources.group(1), re.MULTILINE):
                rules.add(name.group(1))
    return rules


def declared_local_rules() -> set[str]:
    """Rules named by the `localrules:` directives of workflow/rules/*.smk."""
    names = set()
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for listing in re.findall(r"^localrules:\n((?:    \w+,?\n)+)", path.read_text(), re.M):
            names |= set(re.findall(r"\w+", listing))
    return names


def fill_site_lines(text: str, values: dict) -> str:
    """The profile with each line marked `# SITE` set to `values[key]` (uncommented)."""
    filled = []

    def fill(match):
        filled.append(match.group(2))
        return f"{match.group(1)}{match.group(2)}: {values[match.group(2)]}{match.group(3)}"

    text = re.sub(r"^(\s*)(?:# )?(\w+): \S+(\s+# SITE.*)$", fill, text, flags=re.MULTILINE)
    assert sorted(filled) == sorted(values), filled
    return text


def parse_jobs(output: str) -> list[dict]:
    """Jobs of Snakemake's log: rule, local, input, output, wildcards, resources, shell."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", output):
        rule = re.search(r"^(local)?rule (\w+):", block, re.MULTILINE)
        if rule is None:
            continue

        def field(name, block=block):
            found = re.search(rf"^\s+{name}: (.*)$", block, re.MULTILINE)
            return found.group(1) if found else ""

        jobs.append(
            {
                "rule": rule.group(2),
                "local": bool(rule.group(1)),
                "input": field("input").split(", ") if field("input") else [],
                "output": field("output").split(", ") if field("output") else [],
                "benchmark": field("benchmark"),
                "wildcards": field("wildcards").replace(", ", ","),
                "resources": dict(
                    item.split("=", 1) for item in field("resources").split(", ") if item
                ),
                "shell": (re.search(r"^Shell command: (.*)$", block, re.M) or [None, None])[1],
            }
        )
    return jobs


def fake_slurm_bin(folder: Path, scripts: dict[str, str]) -> dict:
    """Executable stand-ins on a PATH in front of the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        (folder / name).write_text(body)
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def of(jobs, rule):
    return [job for job in jobs if job["rule"] == rule]


# --- the one list of GPU rules ---


def test_every_rule_that_asks_for_a_gpu_is_in_the_profiles_gpu_list():
    declared = declared_gpu_rules()
    assert {"train", "score_completions", "evaluate", "score_references"} <= declared
    assert declared == set(profile_variables()["gpu_rules"])


def test_every_other_batch_rule_has_its_cpu_memory_and_time():
    variables = profile_variables()
    assert not set(variables["gpu_rules"]) & set(variables["cpu_rules"])
    # Every rule the profile names exists (a renamed rule would silently lose its resources).
    rules = {
        name
        for path in (ROOT / "workflow" / "rules").glob("*.smk")
        for name in re.findall(r"^rule (\w+):", path.read_text(), re.M)
    }
    assert set(variables["gpu_rules"]) | set(variables["cpu_rules"]) <= rules
    for rule, spec in {**variables["gpu_rules"], **variables["cpu_rules"]}.items():
        assert spec["threads"] >= 1 and spec["mem_mb"] >= 4000 and spec["runtime"] >= 60, rule


# --- dry run of the real experiment (no SLURM installed) ---


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """Jobs of `snakemake -n --workflow-profile profiles/slurm` (SITE lines as shipped)."""
    fake_bin = tmp_path_factory.mktemp("failing_slurm")
    called = fake_bin / "called"
    env = fake_slurm_bin(
        fake_bin,
        {name: f"#!/bin/sh\necho {name} >> {called}\nexit 1\n" for name in SLURM_COMMANDS},
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "profiles/slurm"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    calls = called.read_text().split() if called.exists() else []
    assert "sbatch" not in calls and "srun" not in calls, calls
    output = result.stdout + result.stderr
    assert "This was a dry-run" in output
    return parse_jobs(output)


def test_slurm_train_asks_for_its_gpus_on_one_node(dry_run):
    train = of(dry_run, "train")
    assert len(train) == len(TRAINED)  # one job per trained method
    for job in train:
        assert job["resources"]["gpu"] == "8"  # scale.train_processes of the real config
        assert job["resources"]["nodes"] == "1"
        assert job["resources"]["runtime"] == "1440"
        assert "accelerate launch --config_file workflow/accelerate/ddp.yaml" in job["shell"]
        assert "--num_processes 8 --module rewardcond.train" in job["shell"]


def test_slurm_shards_are_one_gpu_jobs(dry_run):
    score = of(dry_run, "score_completions")
    generate = of(dry_run, "generate_summaries")
    assert len(score) == 16  # set-scatter score: 16
    assert len(generate) == len(TRAINED) * 4  # trained methods x set-scatter generate: 4
    for job in score + generate:
        resources = job["resources"]
        assert (resources["gpu"], resources["mem_mb"], resources["runtime"]) == (
            "1",
            "32000",
            "240",
        )
    assert len(of(dry_run, "merge_scored_completions")) == 1
    assert len(of(dry_run, "merge_generations")) == len(TRAINED)


def test_dry_run_submits_no_rule_that_needs_the_network(dry_run):
    local = declared_local_rules()
    rules = {job["rule"] for job in dry_run}
    assert rules >= NETWORK_RULES  # the real run downloads data, GPT-2 and the reward model
    submitted = rules - local - {"all"}
    assert submitted and not submitted & NETWORK_RULES, submitted & NETWORK_RULES
    assert local >= NETWORK_RULES | {"merge_scored_completions", "merge_generations"}
    # The judge jobs read the folder the local rule wrote (the real config's DeBERTa judge).
    (fetch,) = of(dry_run, "download_hub_model")
    assert fetch["output"] == [RM_FOLDER]
    judging = [job for job in dry_run if RM_FOLDER in job["input"]]
    assert {job["rule"] for job in judging} == {"judge", "judge_references", "judge_agreement"}
    assert len(judging) == len(METHODS) + 2
    # The proxy is the reward model trained here; rloo's train job is trained against it.
    scoring = [job for job in dry_run if "results/tldr-gpt2/reward_model/model" in job["input"]]
    assert {job["rule"] for job in scoring} == {
        "score_completions", "evaluate", "score_references", "generate_best_of_n", "train"
    }  # fmt: skip
    assert [job["wildcards"] for job in scoring if job["rule"] == "train"] == ["method=rloo"]
    assert len(scoring) == 16 + len(METHODS) + 1 + (len(METHODS) - len(TRAINED)) + 1


def test_slurm_every_batch_job_has_memory_and_runtime(dry_run):
    local = declared_local_rules() | {"all"}
    for job in dry_run:
        if job["rule"] not in local:
            assert int(job["resources"]["mem_mb"]) >= 4000, job["rule"]
            assert int(job["resources"]["runtime"]) >= 60, job["rule"]


def dry_run_jobs(*extra: str, env: dict | None = None) -> list[dict]:
    """Jobs of a dry run of the real experiment on the SLURM profile, with `extra` arguments."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", "profiles/slurm", *extra],
        cwd=ROOT, env=env or os.environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return parse_jobs(result.stdout + result.stderr)


def batch_jobs(jobs: list[dict]) -> list[dict]:
    return [job for job in jobs if job["rule"] not in declared_local_rules() | {"all"}]


def test_account_and_partition_from_a_global_profile_are_kept(tmp_path):
    # A per-user profile as the plugin's docs suggest (~/.config/snakemake/<name>/config.yaml,
    # here by path): the workflow profile sets no default-resources of its own, so these apply.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text(
        "default-resources:\n  slurm_account: acct_global\n  slurm_partition: part_global\n"
    )
    jobs = batch_jobs(dry_run_jobs("--profile", str(tmp_path / "mine")))
    assert len(jobs) == 88
    for job in jobs:
        assert job["resources"]["slurm_account"] == "acct_global", job["rule"]
        assert job["resources"]["slurm_partition"] == "part_global", job["rule"]
        assert int(job["resources"]["mem_mb"]) >= 8000 and int(job["resources"]["runtime"]) >= 60


def test_default_resources_on_the_command_line_keep_each_rules_memory_and_time():
    jobs = batch_jobs(dry_run_jobs("--default-resources", "slurm_account=acct_cli"))
    variables = profile_variables()
    tables = {**variables["gpu_rules"], **variables["cpu_rules"]}
    for job in jobs:
        resources = job["resources"]
        assert resources["slurm_account"] == "acct_cli", job["rule"]
        spec = tables[job["rule"]]
        assert (resources["mem_mb"], resources["runtime"]) == (
            str(spec["mem_mb"]), str(spec["runtime"])
        ), job["rule"]  # fmt: skip


# --- the README's command, not dry, with stand-in SLURM commands ---

SBATCH = """#!{python}
# Stand-in sbatch: record the call, write the job's declared outputs, print a job id.
import fcntl, json, shlex, sys
from pathlib import Path

state = Path({state!r})
args = sys.argv[1:]
wrap = next(arg for arg in args if arg.startswith("--wrap="))[len("--wrap="):]
words = shlex.split(wrap)
rule, _, wildcards = words[words.index("--target-jobs") + 1].partition(":")
target = rule + ":" + ",".join(sorted(filter(None, wildcards.split(","))))
workdir = Path(args[args.index("-D") + 1])
for output in json.loads((state / "outputs.json").read_text())[target]:
    path = workdir / output
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.suffix:  # a directory() output: a model folder
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text("{{}}")
    elif path.suffix in (".parquet", ".json"):  # stubs that the local merges can read
        path.write_bytes((state / ("stub" + path.suffix)).read_bytes())
    else:
        path.write_text("")
with open(state / "sbatch.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    calls = state / "sbatch.jsonl"
    job_id = 1000 + (len(calls.read_text().splitlines()) if calls.exists() else 0)
    flags = [arg for arg in args if not arg.startswith("--wrap=")]
    with open(calls, "a") as f:
        f.write(json.dumps({{"job_id": job_id, "target": target, "flags": flags}}) + "\\n")
print(job_id)
"""
SACCT = """#!{python}
# Stand-in sacct: every submitted job has COMPLETED.
import json, sys
from pathlib import Path

with open({state!r} + "/calls.log", "a") as f:
    f.write("sacct " + " ".join(sys.argv[1:]) + "\\n")
calls = Path({state!r}) / "sbatch.jsonl"
for line in calls.read_text().splitlines() if calls.exists() else []:
    print(f"{{json.loads(line)['job_id']}}|COMPLETED")
"""
STUB_REPORT = {"reward_model": "stub", "max_length": 1, "n_in": 1, "n_scored": 1,
               "n_skipped_empty": 0, "n_truncated": 0, "skipped_completion_ids": [],
               "seconds": 0.0, "device": "cpu"}  # fmt: skip


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    """The non-dry run in a copy of the checkout: (jobs of its log, sbatch calls, other calls)."""
    tmp = tmp_path_factory.mktemp("slurm_run")
    work = tmp / "checkout"
    work.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("Snakefile", "workflow", "src", "profiles"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, work / name, **({"ignore": ignore} if copy is shutil.copytree else {}))
    profile = work / "profiles" / "slurm" / "config.yaml"
    profile.write_text(fill_site_lines(profile.read_text(), SITE))
    # Login-node stand-ins: the raw files in place (the download rule keeps them), GPT-2 and the
    # reward model in a local HF cache in the hub's layout; the hub itself unreachable.
    for name in CONFIG["data"]["files"]:
        (work / "data/raw/openai" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "data/raw/openai" / name).write_text("{}\n")
    # The stand-in files' digests replace the real ones the config pins (the only config change).
    digest = hashlib.sha256(b"{}\n").hexdigest()
    digests = {"data": {"sha256": {name: digest for name in CONFIG["data"]["sha256"]}}}
    (work / "stand_in_digests.yaml").write_text(yaml.safe_dump(digests))
    gpt2 = CONFIG["base_models"]["gpt2"]
    rm = CONFIG["reward_model"]["pretrained"]
    cache_tiny_gpt2(tmp / "hf" / "hub", gpt2["hub_id"], gpt2["revision"])
    cache_tiny_reward_model(tmp / "hf" / "hub", rm["hub_id"], rm["revision"])
    state = tmp / "state"
    state.mkdir()
    python = sys.executable
    # `row`: a shard of several carries each row's input position, by which the merge orders
    stub = pd.DataFrame({"source": ["policy"], "split": ["train"], "reward": [0.0],
                         "target_name": ["none"], "sample": [0], "row": [0]})  # fmt: skip
    stub.to_parquet(state / "stub.parquet")
    (state / "stub.json").write_text(json.dumps(STUB_REPORT))

    def record(name, body):
        return f'#!/bin/sh\necho "{name} $*" >> {state}/calls.log\n{body}\n'

    env = fake_slurm_bin(
        tmp / "bin",
        {
            "sbatch": SBATCH.format(python=python, state=str(state)),
            "sacct": SACCT.format(python=python, state=str(state)),
            "sacctmgr": record("sacctmgr", f"echo {SITE['slurm_account']}"),
            "scontrol": record("scontrol", "exit 0"),
            "sinfo": record("sinfo", "printf 'PARTITION\\ncpu*\\ngpu\\n'"),
            "squeue": record("squeue", "exit 0"),
            "srun": record("srun", "exit 1"),
        },
    )  # fmt: skip
    env = {key: value for key, value in env.items() if not key.startswith(("HF_", "SLURM_"))}
    env |= {"HF_HOME": str(tmp / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    command = [python, "-m", "snakemake", "--workflow-profile", "profiles/slurm"]
    command += ["--configfile", "stand_in_digests.yaml"]
    # The outputs of every job, from a dry run of the same command, for the stand-in sbatch.
    dry = subprocess.run(
        [*command, "-n"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    planned = parse_jobs(dry.stdout + dry.stderr)
    outputs = {
        f"{job['rule']}:{','.join(sorted(filter(None, job['wildcards'].split(','))))}": [
            *job["output"],
            *filter(None, [job["benchmark"]]),
        ]
        for job in planned
    }
    (state / "outputs.json").write_text(json.dumps(outputs))
    # The first status check 1 s after submission instead of 40 (a plugin setting; no flag).
    result = subprocess.run(
        [*command, "--slurm-init-seconds-before-status-checks", "1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    sbatch = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]
    calls = (state / "calls.log").read_text().splitlines()
    # Finished: run again, nothing is left to do (the hard-linked hub model counts as current).
    again = subprocess.run(
        [*command, "-n"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    return planned, parse_jobs(output), sbatch, calls


def sbatch_flags(flags: list[str]) -> dict:
    """The flags we check, from one recorded sbatch call."""
    found = {}
    for index, flag in enumerate(flags):
        if flag in ("-p", "-A", "-t", "--mem"):
            found[flag] = flags[index + 1]
        elif flag.startswith(("--gpus=", "--cpus-per-task=", "--nodes=")):
            key, value = flag.split("=", 1)
            found[key] = value
    return found


def test_readme_command_submits_every_batch_job_once_with_its_flags(submission):
    planned, ran, sbatch, calls = submission
    variables = profile_variables()
    gpu_rules, cpu_rules = variables["gpu_rules"], variables["cpu_rules"]
    batch = [job for job in planned if job["rule"] not in declared_local_rules() | {"all"}]
    targets = [call["target"] for call in sbatch]
    assert len(targets) == len(set(targets)) == len(batch)
    # prepare, eval_prompts, targets, reward_model_accuracy, score_references, publish; 16 score
    # shards; per trained method a trainset, a train and 4 generate shards; 2 best-of-N; 8
    # evaluate; 8 KL from sft (kl, kl_best_of_n: publish reads them); train_reward_model (the
    # proxy is trained here); 8 judge, judge_references, judge_agreement, examples (issue 17)
    assert len(batch) == 6 + 16 + len(TRAINED) * 6 + 2 + 2 * len(METHODS) + 1 + len(METHODS) + 3
    assert len(batch) == 88
    assert {target.partition(":")[0] for target in targets} == {job["rule"] for job in batch}
    assert not any(call.startswith("srun") for call in calls)  # nothing runs on the login node
    for call in sbatch:
        rule = call["target"].partition(":")[0]
        flags = sbatch_flags(call["flags"])
        assert flags["-A"] == SITE["slurm_account"], call
        if rule in gpu_rules:
            spec = gpu_rules[rule]
            # One process per GPU on one node (scale.train_processes: 8) for the two trainings.
            multi_gpu = rule in ("train", "train_reward_model")
            gpus = 8 if multi_gpu else 1
            expected = {"-p": SITE["gpu_partition"], "--gpus": f"{SITE['gpu_model']}:{gpus}"}
            expected |= {"--nodes": "1"} if multi_gpu else {}
        else:
            spec = cpu_rules[rule]
            expected = {"-p": SITE["slurm_partition"]}
        expected |= {
            "-A": SITE["slurm_account"],
            "-t": str(spec["runtime"]),
            "--mem": str(spec["mem_mb"]),
            "--cpus-per-task": str(spec["threads"]),  # = the job's threads
        }
        assert flags == expected, call


def test_readme_command_runs_the_network_rules_and_merges_on_the_login_node(submission):
    planned, ran, sbatch, _ = submission
    submitted = {call["target"].partition(":")[0] for call in sbatch}
    local = {job["rule"] for job in ran if job["local"]}
    assert local == NETWORK_RULES | {"merge_scored_completions", "merge_generations", "all"}
    assert not submitted & local
    # One job per model and none per GPU job: the reward model is fetched once.
    assert len(of(ran, "download_hub_model")) == len(of(ran, "download_base_model")) == 1


def test_readme_command_records_the_sbatch_lines(submission):
    """The sbatch lines of train, one score shard, evaluate and prepare as README shows them
    (from the account on: job name, log, comment and work directory left out; pytest -s)."""
    _, _, sbatch, _ = submission
    shown = {}
    for call in sbatch:
        rule = call["target"].partition(":")[0]
        if rule in ("train", "score_completions", "evaluate", "prepare") and rule not in shown:
            flags = call["flags"]
            print(f"\n{call['target']}: sbatch {shlex.join(flags)} --wrap=...")
            shown[rule] = "sbatch " + shlex.join(flags[flags.index("-A") :])
            shown[rule] = shown[rule].replace(" -D " + flags[flags.index("-D") + 1], "")
    readme = (ROOT / "README.md").read_text()
    for rule, line in shown.items():
        assert re.search(rf"^{rule}: +{re.escape(line)}$", readme, re.MULTILINE), line
    assert sorted(shown) == ["evaluate", "prepare", "score_completions", "train"]

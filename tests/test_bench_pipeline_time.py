"""tests/benchmarks/bench_pipeline_time.py: the time figures of a finished run, from a run folder
laid out as Snakemake leaves it (metadata records named by their output, benchmark files)."""

import base64
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "benchmarks" / "bench_pipeline_time.py"
spec = importlib.util.spec_from_file_location("bench_pipeline_time", SCRIPT)
bench = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_job(run: Path, rule: str, name: str, outputs, inputs, start, end, cpu):
    folder = run / ".snakemake" / "metadata"
    folder.mkdir(parents=True, exist_ok=True)
    for output in outputs:
        record = {
            "rule": rule,
            "input": list(inputs),
            "log": [f"logs/{rule}/{name}.log"],
            "starttime": start,
            "endtime": end,
            "incomplete": False,
        }
        encoded = base64.urlsafe_b64encode(output.encode()).decode()
        (folder / encoded).write_text(json.dumps(record))
    benchmark = run / "benchmarks" / rule / f"{name}.tsv"
    benchmark.parent.mkdir(parents=True, exist_ok=True)
    wall = end - start
    benchmark.write_text(HEADER + f"{wall}\t0:00:01\t1\t1\t1\t1\t0\t0\t90.0\t{cpu}\n")


@pytest.fixture
def run(tmp_path):
    # base (101 s) -> a (11 s) and b (41 s) and c (31 s); c also needs a; d (7 s) needs b and c.
    # b's cpu_time is what Snakemake records for a 41 s job: the CPU of its last sample, ~15 s in.
    write_job(tmp_path, "base", "x", ["m/base", "m/base.json"], ["raw.txt"], 0, 101, 100)
    write_job(tmp_path, "a", "x", ["a.txt"], ["m/base"], 101, 112, 10)
    write_job(tmp_path, "b", "x", ["b.txt"], ["m/base"], 101, 142, 15)
    write_job(tmp_path, "c", "x", ["c.txt"], ["m/base", "a.txt"], 112, 143, 30)
    write_job(tmp_path, "d", "x", ["d.txt"], ["b.txt", "c.txt", "src/lib.py"], 143, 150, 5)
    return tmp_path


def test_totals_critical_path_bound_and_schedule(run):
    jobs = bench.read_jobs(run)
    assert sorted(job.rule for job in jobs) == ["a", "b", "base", "c", "d"]
    needs = bench.dependencies(jobs)
    length, path = bench.critical_path(jobs, needs)
    assert length == 150.0  # base 101 + a 11 + c 31 + d 7
    assert [jobs[index].rule for index in path] == ["base", "a", "c", "d"]
    assert sum(job.wall for job in jobs) == 191.0
    # 2 cores: base, then a and b at 101, c after a (at 112), b ends 142, c 143, d 150: the
    # schedule replays the run's own start and end times.
    assert bench.list_schedule(jobs, needs, 2) == 150.0
    assert bench.list_schedule(jobs, needs, 1) == 191.0
    assert bench.concurrency(jobs) == {1: 109.0, 2: 41.0}


def test_a_job_takes_its_wall_time_not_the_sampled_cpu_time(run):
    # Snakemake's cpu_time of a job longer than ~15 s is a stale sample (b: 15 of 41 s): the
    # critical path through b and the schedule must count b's 41 s.
    c_benchmark = run / "benchmarks" / "c" / "x.tsv"
    c_benchmark.write_text(HEADER + "1.0\t0:00:01\t1\t1\t1\t1\t0\t0\t90.0\t1\n")
    jobs = bench.read_jobs(run)
    needs = bench.dependencies(jobs)
    length, path = bench.critical_path(jobs, needs)
    assert length == 149.0  # base 101 + b 41 + d 7 (c now takes 1 s)
    assert [jobs[index].rule for index in path] == ["base", "b", "d"]
    assert bench.list_schedule(jobs, needs, 2) == 149.0


def test_the_jobs_after_a_long_first_job_bound_the_wall_time(tmp_path):
    # base (100 s), then four 10 s jobs that need it: on 2 cores no schedule beats 100 + 40/2,
    # above both the critical path (110) and the total over the cores (140/2).
    write_job(tmp_path, "base", "x", ["m/base"], ["raw.txt"], 0, 100, 100)
    for name in "pqrs":
        write_job(tmp_path, "use", name, [f"{name}.txt"], ["m/base"], 100, 110, 10)
    jobs = bench.read_jobs(tmp_path)
    needs = bench.dependencies(jobs)
    assert bench.critical_path(jobs, needs)[0] == 110.0
    bound, job = bench.descendant_bound(jobs, needs, 2)
    assert (bound, jobs[job].rule) == (120.0, "base")
    assert bench.list_schedule(jobs, needs, 2) == 120.0
    assert bench.descendant_bound(jobs, needs, 4)[0] == 110.0  # one of the 10 s jobs: 110 + 0


def test_prints_the_figures(run):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(run), "--cores", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "5 jobs; total job time 191.0 s (wall of each job)" in out
    assert "benchmarks' cpu_time 160.0 s: CPU at Snakemake's last sample" in out
    assert "each of the 3 jobs longer than 15 s" in out
    assert "critical path 150.0 s:" in out
    assert "lower bound on 2 idle cores: max(150.0, 191.0/2) = 150.0 s" in out
    assert (
        "lower bound from the jobs that wait for one job on 2 idle cores: 150.0 s (d logs/d/x.log"
        in out
    )
    assert "list schedule on 2 cores (replay of the jobs' times): 150.0 s" in out
    assert "measured wall 150.0 s" in out
    assert "jobs running at once: 1: 109.0 s, 2: 41.0 s" in out


def test_a_job_without_its_benchmark_file_is_named(run):
    (run / "benchmarks" / "c" / "x.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"job of rule c \(log logs/c/x.log\): no .*x.tsv"):
        bench.read_jobs(run)

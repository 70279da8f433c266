"""Where a finished Snakemake run's time went: CPU total, critical path, the 2-core wall bound.

Reads a finished run's folder (the checkout the pipeline ran in): each job's record in
`.snakemake/metadata/` (rule, inputs, log, start and end time) and its benchmark file. The
workflow names every job's benchmark after its log (`logs/<rule>/<x>.log` ->
`benchmarks/<rule>/<x>.tsv`); a job without one is an error. The job graph comes from the
records: a job depends on the job whose output is one of its inputs.

Prints, from the benchmark files' `cpu_time` (CPU seconds, summed over a job's processes: a
figure that a loaded machine changes little, unlike wall time):

- total CPU seconds over all jobs;
- the critical path (the longest chain of dependent jobs, in CPU seconds) and its jobs;
- the lower bound max(critical path, total CPU / cores) of the wall time on `cores` idle cores
  (every job here runs one thread);
- a list schedule of the jobs on `cores` idle cores, each taking its CPU seconds, the job with
  the longest remaining path first (an estimate of the idle wall time, not a bound: Snakemake
  picks its own order);
- the wall time measured (first job's start to last job's end) and the load average the
  benchmark files recorded.

    python tests/benchmarks/bench_pipeline_time.py /tmp/ci-work2/demo [--cores 2] [--top 15]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    rule: str
    log: str
    outputs: list[str] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    start: float = 0.0
    end: float = 0.0
    cpu: float = 0.0
    wall: float = 0.0
    load: float = 0.0


def read_jobs(run: Path) -> list[Job]:
    """One Job per (rule, log) of the run's metadata records, with its benchmark figures."""
    folder = run / ".snakemake" / "metadata"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no Snakemake metadata (is {run} a finished run?)")
    jobs: dict[tuple[str, str], Job] = {}
    for record_path in sorted(folder.iterdir()):
        record = json.loads(record_path.read_text())
        output = _decode(record_path.name)
        if record.get("incomplete") or not record.get("log"):
            continue
        key = (record["rule"], record["log"][0])
        job = jobs.setdefault(key, Job(rule=record["rule"], log=record["log"][0]))
        job.outputs.append(output)
        job.inputs.update(record["input"])
        job.start, job.end = record["starttime"], record["endtime"]
    for job in jobs.values():
        log = Path(job.log)
        if log.parts[0] != "logs" or log.suffix != ".log":
            raise ValueError(f"job of rule {job.rule}: log {job.log} is not logs/<rule>/<x>.log")
        benchmark = run / "benchmarks" / log.relative_to("logs").with_suffix(".tsv")
        if not benchmark.is_file():
            raise FileNotFoundError(f"job of rule {job.rule} (log {job.log}): no {benchmark}")
        with benchmark.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if len(rows) != 1:
            raise ValueError(f"{benchmark}: expected 1 row (one repeat), found {len(rows)}")
        job.cpu, job.wall = float(rows[0]["cpu_time"]), float(rows[0]["s"])
        job.load = float(rows[0]["mean_load"])
    return list(jobs.values())


def _decode(name: str) -> str:
    import base64

    # Snakemake stores each output's record under its path, urlsafe-base64 encoded.
    return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()


def dependencies(jobs: list[Job]) -> dict[int, list[int]]:
    """For each job (by index), the jobs that produce one of its inputs."""
    producer = {output: index for index, job in enumerate(jobs) for output in job.outputs}
    return {
        index: sorted({producer[path] for path in job.inputs if path in producer} - {index})
        for index, job in enumerate(jobs)
    }


def critical_path(jobs: list[Job], needs: dict[int, list[int]]) -> tuple[float, list[int]]:
    """The longest chain of dependent jobs in CPU seconds, and its jobs in order."""
    finish: dict[int, float] = {}
    before: dict[int, int | None] = {}

    def visit(index: int) -> float:
        if index not in finish:
            upstream = [(visit(other), other) for other in needs[index]]
            longest, previous = max(upstream, default=(0.0, None))
            finish[index], before[index] = longest + jobs[index].cpu, previous
        return finish[index]

    last = max(range(len(jobs)), key=visit)
    path = [last]
    while before[path[-1]] is not None:
        path.append(before[path[-1]])
    return finish[last], path[::-1]


def list_schedule(jobs: list[Job], needs: dict[int, list[int]], cores: int) -> float:
    """Makespan of a greedy schedule on `cores` cores, longest remaining path first."""
    users: dict[int, list[int]] = {index: [] for index in range(len(jobs))}
    for index, upstream in needs.items():
        for other in upstream:
            users[other].append(index)
    tail: dict[int, float] = {}

    def remaining(index: int) -> float:
        if index not in tail:
            tail[index] = jobs[index].cpu + max(map(remaining, users[index]), default=0.0)
        return tail[index]

    waiting = {index: len(upstream) for index, upstream in needs.items()}
    ready = [(-remaining(index), index) for index, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < cores:
            _, index = heapq.heappop(ready)
            heapq.heappush(running, (now + jobs[index].cpu, index))
        now, done = heapq.heappop(running)
        for user in users[done]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (-remaining(user), user))
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the folder the pipeline ran in")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--top", type=int, default=15, help="largest jobs to list")
    args = parser.parse_args()
    jobs = read_jobs(args.run)
    needs = dependencies(jobs)
    total = sum(job.cpu for job in jobs)
    path_cpu, path = critical_path(jobs, needs)
    wall = max(job.end for job in jobs) - min(job.start for job in jobs)
    load = sum(job.load * job.wall for job in jobs) / sum(job.wall for job in jobs)
    print(f"{len(jobs)} jobs; total CPU {total:.1f} s")
    print(f"critical path {path_cpu:.1f} CPU s:")
    for index in path:
        print(f"  {jobs[index].cpu:7.1f}  {jobs[index].rule:26s} {jobs[index].log}")
    print(
        f"lower bound on {args.cores} idle cores: max({path_cpu:.1f}, {total:.1f}/{args.cores})"
        f" = {max(path_cpu, total / args.cores):.1f} s"
    )
    print(
        f"list schedule on {args.cores} idle cores (estimate): "
        f"{list_schedule(jobs, needs, args.cores):.1f} s"
    )
    print(f"measured wall {wall:.1f} s (benchmarks' mean CPU load, wall-weighted: {load:.0f}%)")
    print(f"largest {args.top} jobs (CPU s / wall s):")
    for job in sorted(jobs, key=lambda job: -job.cpu)[: args.top]:
        print(f"  {job.cpu:7.1f} {job.wall:7.1f}  {job.rule:26s} {job.log}")


if __name__ == "__main__":
    main()

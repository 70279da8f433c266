"""Where a finished Snakemake run's time went: job time, critical path, the 2-core wall bound.

Reads a finished run's folder (the checkout the pipeline ran in): each job's record in
`.snakemake/metadata/` (rule, inputs, log, start and end time) and its benchmark file. The
workflow names every job's benchmark after its log (`logs/<rule>/<x>.log` ->
`benchmarks/<rule>/<x>.tsv`); a job without one is an error. The job graph comes from the
records: a job depends on the job whose output is one of its inputs.

Each job's time is its benchmark file's wall seconds (`s`). Every job here runs one thread and
is CPU-bound (its CPU time read from /proc at exit is within a few % of its wall time), so on
idle cores its wall time is its work. The benchmark file's `cpu_time` is no measure of that
work: Snakemake (9.x, `snakemake/benchmark.py`) records the CPU time of its *last* sample, and
samples every 0.5 s for the first 30 samples (about 15 s), then every 30 s. A job that runs 36 s
thus reports the CPU of its first ~15 s (train/sft at CI's run `c15ab69`: cpu_time 15.1 s, wall
36.5 s, 33.5 CPU s measured at exit). This script prints `cpu_time` only as that sample.

Prints:

- total job seconds over all jobs (and the sampled `cpu_time`, with how many jobs ran past
  the 0.5 s sampling and so undercount it);
- the critical path (the longest chain of dependent jobs) and its jobs;
- the lower bound max(critical path, total / cores) of the wall time on `cores` idle cores, and
  a tighter one: for each job, the longest chain ending in it plus its descendants' time over
  the cores (`descendant_bound`);
- a list schedule of the jobs on `cores` cores, each taking its time, the job with the longest
  remaining path first (Snakemake's order with the workflow's stage priorities); on the
  run's own job times it replays the run, so a replay close to the measured wall means that no
  time was lost between jobs (scheduling, Snakemake's own work): only in the jobs;
- the wall time measured (first job's start to last job's end), how long 0, 1, 2, ... jobs
  ran at once, and the load average the benchmark files recorded.

    python tests/benchmarks/bench_pipeline_time.py /tmp/ci-work4/demo [--cores 2] [--top 15]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path

# Snakemake samples a job's CPU time every 0.5 s for its first 30 samples, then every 30 s: a job
# longer than this many seconds may have run up to 30 s past its last sample.
SAMPLED_SECONDS = 15.0


@dataclass
class Job:
    rule: str
    log: str
    outputs: list[str] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    start: float = 0.0
    end: float = 0.0
    cpu: float = 0.0  # `cpu_time`: the CPU seconds at Snakemake's last sample, not at the end
    wall: float = 0.0  # `s`: the job's wall seconds, its work (one CPU-bound thread)
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
    """The longest chain of dependent jobs in (wall) seconds, and its jobs in order."""
    finish: dict[int, float] = {}
    before: dict[int, int | None] = {}

    def visit(index: int) -> float:
        if index not in finish:
            upstream = [(visit(other), other) for other in needs[index]]
            longest, previous = max(upstream, default=(0.0, None))
            finish[index], before[index] = longest + jobs[index].wall, previous
        return finish[index]

    last = max(range(len(jobs)), key=visit)
    path = [last]
    while before[path[-1]] is not None:
        path.append(before[path[-1]])
    return finish[last], path[::-1]


def descendant_bound(jobs: list[Job], needs: dict[int, list[int]], cores: int) -> tuple[float, int]:
    """A lower bound on the wall time on `cores` cores, and the job that gives it.

    Every job that (transitively) needs job j starts after j ends, and j ends no earlier than the
    longest chain of jobs ending in j; so the wall time is at least that chain plus the work of
    j's descendants spread over all cores. The maximum over j is at least the critical path (the
    last job of the path, which has no descendants), and is the tighter bound when a long job
    has to run alone first (a base model that everything else needs).
    """
    users: dict[int, set[int]] = {index: set() for index in range(len(jobs))}
    for index, upstream in needs.items():
        for other in upstream:
            users[other].add(index)
    below: dict[int, set[int]] = {}

    def descendants(index: int) -> set[int]:
        if index not in below:
            found = set(users[index])
            for user in users[index]:
                found |= descendants(user)
            below[index] = found
        return below[index]

    ends: dict[int, float] = {}

    def end(index: int) -> float:
        if index not in ends:
            ends[index] = jobs[index].wall + max(map(end, needs[index]), default=0.0)
        return ends[index]

    bounds = [
        (end(index) + sum(jobs[other].wall for other in descendants(index)) / cores, index)
        for index in range(len(jobs))
    ]
    return max(bounds)


def list_schedule(jobs: list[Job], needs: dict[int, list[int]], cores: int) -> float:
    """Makespan of a greedy schedule on `cores` cores (each job takes its wall seconds), longest
    remaining path first."""
    users: dict[int, list[int]] = {index: [] for index in range(len(jobs))}
    for index, upstream in needs.items():
        for other in upstream:
            users[other].append(index)
    tail: dict[int, float] = {}

    def remaining(index: int) -> float:
        if index not in tail:
            tail[index] = jobs[index].wall + max(map(remaining, users[index]), default=0.0)
        return tail[index]

    waiting = {index: len(upstream) for index, upstream in needs.items()}
    ready = [(-remaining(index), index) for index, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < cores:
            _, index = heapq.heappop(ready)
            heapq.heappush(running, (now + jobs[index].wall, index))
        now, done = heapq.heappop(running)
        for user in users[done]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (-remaining(user), user))
    return now


def concurrency(jobs: list[Job]) -> dict[int, float]:
    """Seconds of the run (first start to last end) during which 0, 1, 2, ... jobs ran at once."""
    events = sorted([(job.start, 1) for job in jobs] + [(job.end, -1) for job in jobs])
    seconds: dict[int, float] = {}
    running, previous = 0, events[0][0]
    for time, change in events:
        if time > previous:
            seconds[running] = seconds.get(running, 0.0) + time - previous
        running, previous = running + change, time
    return dict(sorted(seconds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the folder the pipeline ran in")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--top", type=int, default=15, help="largest jobs to list")
    args = parser.parse_args()
    jobs = read_jobs(args.run)
    needs = dependencies(jobs)
    total = sum(job.wall for job in jobs)
    sampled = sum(job.cpu for job in jobs)
    stale = sum(job.wall > SAMPLED_SECONDS for job in jobs)
    path_time, path = critical_path(jobs, needs)
    wall = max(job.end for job in jobs) - min(job.start for job in jobs)
    load = sum(job.load * job.wall for job in jobs) / total
    print(f"{len(jobs)} jobs; total job time {total:.1f} s (wall of each job)")
    print(
        f"benchmarks' cpu_time {sampled:.1f} s: CPU at Snakemake's last sample, which misses up to"
        f" 30 s of each of the {stale} jobs longer than {SAMPLED_SECONDS:.0f} s"
    )
    print(f"critical path {path_time:.1f} s:")
    for index in path:
        print(f"  {jobs[index].wall:7.1f}  {jobs[index].rule:26s} {jobs[index].log}")
    print(
        f"lower bound on {args.cores} idle cores: max({path_time:.1f}, {total:.1f}/{args.cores})"
        f" = {max(path_time, total / args.cores):.1f} s"
    )
    bound, job = descendant_bound(jobs, needs, args.cores)
    print(
        f"lower bound from the jobs that wait for one job on {args.cores} idle cores: {bound:.1f} s"
        f" ({jobs[job].rule} {jobs[job].log} ends, then its descendants share the cores)"
    )
    print(
        f"list schedule on {args.cores} cores (replay of the jobs' times): "
        f"{list_schedule(jobs, needs, args.cores):.1f} s"
    )
    print(f"measured wall {wall:.1f} s (benchmarks' mean CPU load, wall-weighted: {load:.0f}%)")
    running = ", ".join(f"{count}: {seconds:.1f} s" for count, seconds in concurrency(jobs).items())
    print(f"jobs running at once: {running}")
    print(f"largest {args.top} jobs (wall s / sampled cpu_time s):")
    for job in sorted(jobs, key=lambda job: -job.wall)[: args.top]:
        print(f"  {job.wall:7.1f} {job.cpu:7.1f}  {job.rule:26s} {job.log}")


if __name__ == "__main__":
    main()

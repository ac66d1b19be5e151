"""``dvc repro`` of independent stages side by side, each on its share of the cores.

DVC runs one stage at a time. For independent stages its documentation's answer is to start
``dvc repro`` several times (https://dvc.org/doc/command-reference/repro, "Parallel stage
execution"); this does that for a set of stages, in the order of their DAG: every stage is its
own ``dvc --wait-for-lock repro --single-item <stage>``, ``jobs`` at a time. DVC holds its
repository lock only while it collects stages, hashes and writes ``dvc.lock``, never while a
command runs; ``--wait-for-lock`` makes those short moments queue instead of failing, and each
writer rereads ``dvc.lock`` under the lock, so no record is lost.

Why: a small student's step is too small to keep two cores busy. On the 2-core machine two
train-student runs with one thread each finish in 75.5 s where one at a time with two threads
takes 56 s each (1.48x the throughput; ``python -m benchmarks.step`` measures the step alone).
Each stage gets ``cores // jobs`` threads (``OMP_NUM_THREADS``), so a run's thread count, which
changes its float sums, does not depend on what runs beside it.

Only the stages given are run; what they depend on outside that set must be up to date already
(run it first with a plain ``dvc repro``: stage one's stages use every core on their own).
Each stage's output goes to ``<logs>/<stage>.log``; the first failure stops new stages from
starting, lets the running ones finish, and ends with the failed stage's log tail.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from benchmarks.common import threads_per_job
from pipeline.progress import progress

logger = logging.getLogger("benchmarks.repro")

_EDGE = re.compile(r'^"(?P<a>[^"]+)" -> "(?P<b>[^"]+)";$')


def upstream(stages: list[str], cwd: Path) -> dict[str, set[str]]:
    """Each of ``stages`` -> the ones among ``stages`` it depends on, from the project's ``dvc dag --dot``.

    Dependencies through stages outside the set count too (a -> x -> b makes b wait for a).
    """
    dot = subprocess.run(["dvc", "dag", "--dot"], cwd=cwd, capture_output=True, text=True, check=True)
    parents: dict[str, set[str]] = {}
    for line in dot.stdout.splitlines():
        if m := _EDGE.match(line.strip()):
            parents.setdefault(m["b"], set()).add(m["a"])
    wanted = set(stages)

    def ancestors(stage: str, seen: set[str]) -> set[str]:
        for parent in parents.get(stage, ()):
            if parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    return {s: ancestors(s, set()) & wanted for s in stages}


def descendants(graph: dict[str, set[str]]) -> dict[str, int]:
    """How many stages wait on each one: the scheduler starts those with most first."""
    return {s: sum(s in deps for deps in graph.values()) for s in graph}


def _run_stage(stage: str, cwd: Path, log: Path, threads: int) -> tuple[int, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        cmd = ["dvc", "--wait-for-lock", "repro", "--single-item", stage]
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    return rc, time.perf_counter() - t0


def repro(stages: list[str], *, jobs: int, logs: Path, cwd: Path) -> dict[str, float]:
    """Reproduce ``stages`` (DVC names), ``jobs`` at a time; returns each one's seconds.

    Raises SystemExit naming the first stage that failed, with the end of its log.
    """
    graph = upstream(stages, cwd)
    waiting = descendants(graph)
    logs.mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(jobs, len(stages)))
    threads = threads_per_job(jobs)
    logger.info("%d stages, %d at a time, %d thread(s) each; logs in %s", len(stages), jobs, threads, logs)
    done: dict[str, float] = {}
    failed: list[tuple[str, int]] = []
    running: dict[Future, str] = {}
    bar = progress(total=len(stages), desc="stages", unit="stage", logger=logger)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while True:
            started = set(done) | set(running.values()) | {s for s, _ in failed}
            ready = [s for s in stages if s not in started and graph[s] <= set(done)]
            ready.sort(key=lambda s: -waiting[s])
            while not failed and ready and len(running) < jobs:
                stage = ready.pop(0)
                log = logs / f"{stage.replace('/', '_')}.log"
                running[pool.submit(_run_stage, stage, cwd, log, threads)] = stage
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                rc, seconds = future.result()
                if rc:
                    failed.append((stage, rc))
                    continue
                done[stage] = seconds
                bar.update(1)
                logger.info("%s: %.1f s", stage, seconds)
    bar.close()
    if failed:
        stage, rc = failed[0]
        log = logs / f"{stage.replace('/', '_')}.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"dvc repro of {stage} failed (exit {rc}); the end of {log}:\n{tail}")
    if len(done) < len(stages):  # a cycle cannot happen in a DVC DAG; say so rather than hang
        raise SystemExit(f"stages never ready: {sorted(set(stages) - set(done))}")
    return done

"""The full protocol behind the default benchmark: the val grid, the default run, the table over its switches.

``python -m benchmarks.protocol grid`` trains every point of ``select_student.points`` (params.yaml)
with ``select_student.seeds`` (seeds of their own, never the test seeds) on the default cache
and scores them on **val**; it writes ``metrics/selection.json`` with every point's val figures
and the chosen one (highest mean val video top-1). The chosen settings go into
``train_student.arms.hallucinet`` by hand, in a commit of their own, before the test split is
ever scored (compare-students copies the selection into the report and checks the arm against it).

``python -m benchmarks.protocol knobs`` reruns the whole pipeline (make-synthetic, fit-teacher,
extract-teacher, check-benchmark, train-student for both arms, compare-students) with each
switch of the benchmark off in turn, in a scratch folder, over ``--knob-seeds`` paired seeds, and
writes ``metrics/knobs.json`` and the table the README shows (``metrics/knobs.md``). The default
row is the default run itself (``metrics/report.json``, from ``dvc repro``).

``python -m benchmarks.protocol quick`` (``make run``) is the default run cut to the seeds that fit in
15 minutes on 2 cores (``QUICK_SEEDS``): ``dvc repro`` of their stages, compare-students over them
into ``metrics/quick/``.

``python -m benchmarks.protocol all`` (``make protocol``, after the install) does it all in order:
the grid, a check that params.yaml carries the grid's choice (it stops if not), ``dvc repro``
(the default run: every arm over ``compare_students.seeds``, the test split scored once by
compare-students), the quick comparison (so a fresh clone's ``make run`` has a committed figure
to match), then the knobs. Students train ``--jobs`` at a time on ``cores // jobs`` threads each
everywhere: the grid's and the knobs' runs in worker processes (:func:`train_runs`), the DVC
stages as parallel ``dvc repro`` calls (:mod:`benchmarks.repro`), so a seed's figures do not
depend on which part trained it. Nothing here changes a setting after seeing a test figure: the
grid reads val only, and the switches reuse the default's settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from joblib import Parallel, delayed

from pipeline.config import load_config
from pipeline.design import DesignConfig, check_design
from pipeline.synthetic import SyntheticConfig, generate
from student_train.compare import CompareConfig, compare_students, mean_ci
from student_train.train import TrainConfig, apply_arm, train_student
from teacher_extract.extract import ExtractConfig, run_extraction
from teacher_extract.fit import FitConfig, fit_teacher_model

from .common import cpu_count, threads_per_job
from .repro import repro

logger = logging.getLogger("benchmarks.protocol")

REPO = Path(__file__).resolve().parents[1]

#: The benchmark's switches, each turned off on its own and both together (the default has both on).
#: The two arms every switched-off pipeline trains.
ARMS = ("baseline", "hallucinet")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The seeds ``make run`` compares (what fits in its 15 minutes); the protocol writes their report too.
QUICK_SEEDS = (0, 1, 2)


KNOBS: dict[str, dict[str, Any]] = {
    "no pool (teacher fitted on the students' own videos and labels)": {"pool": False},
    "no scene shortcut (scene_bias 0)": {"scene_bias": 0.0},
    "neither": {"pool": False, "scene_bias": 0.0},
}


def read_params(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def train_arm(params: dict[str, Any], arm: str, seed: int, out: Path, **overrides: Any) -> dict[str, Any]:
    section = apply_arm(params["train_student"], arm)
    cfg = load_config(TrainConfig, {**section, **overrides}, seed=seed, out=str(out))
    return train_student(cfg)


def _train_job(params: dict[str, Any], arm: str, seed: int, out: Path, overrides: dict, threads: int) -> dict:
    """One run in a worker process, with its share of the cores (see :func:`train_runs`)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%X")
    torch.set_num_threads(threads)
    return train_arm(params, arm, seed, out, **overrides)


def train_runs(params: dict[str, Any], runs: list[tuple[str, int, Path, dict]], jobs: int) -> list[dict]:
    """Train ``(arm, seed, out, overrides)`` runs, ``jobs`` at a time, each on cores // jobs threads.

    A small student's step is too small to keep two cores busy: on the 2-core machine one run
    with 2 threads steps in 11.1 ms, two runs with one thread each in 16.4-16.9 ms side by side,
    1.32x the throughput (``python -m benchmarks.step``). Thread counts change the float
    sums, so a run here is not bit-identical to the same seed under ``dvc repro``; it is as valid.
    """
    jobs = max(1, min(jobs, len(runs)))
    threads = threads_per_job(jobs)
    logger.info("%d runs, %d at a time, %d thread(s) each", len(runs), jobs, threads)
    return Parallel(n_jobs=jobs, backend="loky")(
        delayed(_train_job)(params, arm, seed, out, overrides, threads) for arm, seed, out, overrides in runs
    )


def grid(params: dict[str, Any], work: Path, out: Path, jobs: int) -> dict[str, Any]:
    """Every grid point, and the baseline, over the selection seeds, scored on val."""
    select = params["select_student"]
    seeds = [int(s) for s in select["seeds"]]
    points = [{"lambda_weight": 0.0}, *(dict(p) for p in select["points"])]
    names = ["baseline", *(f"point{i}" for i in range(1, len(points)))]
    runs = [
        ("baseline" if i == 0 else "hallucinet", seed, work / "grid" / names[i] / f"seed{seed}", point)
        for i, point in enumerate(points)
        for seed in seeds
    ]
    metrics = iter(train_runs(params, runs, jobs))
    results = []
    for name, point in zip(names, points, strict=True):
        values = []
        for _ in seeds:
            m = next(metrics)
            assert m["split"] == "val" and "test" not in m["splits_read"].split(","), m["splits_read"]
            values.append(m["video_top1"])
        mean, ci = mean_ci(values)
        results.append({"name": name, "settings": point, "video_top1": {"mean": mean, "ci95": ci, "values": values}})
        logger.info("grid %s %s: val video top-1 %.4f [%.4f, %.4f]", name, point, mean, *ci)
    best = max(results[1:], key=lambda r: r["video_top1"]["mean"])
    selection = {
        "split": "val",
        "seeds": seeds,
        "metric": "video_top1",
        "results": results,
        "chosen": best["settings"],
    }
    out.write_text(json.dumps(selection, indent=2, sort_keys=True) + "\n")
    logger.info("chosen on val: %s (mean val video top-1 %.4f)", best["settings"], best["video_top1"]["mean"])
    return selection


def run_pipeline(
    params: dict[str, Any], folder: Path, *, jobs: int, pool: bool = True, scene_bias: float | None = None
) -> dict:
    """The default pipeline in ``folder`` with a switch or two off; returns compare-students' report."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    p = json.loads(json.dumps(params))  # a deep copy
    synth = p["make_synthetic"]
    synth["out"] = str(folder / "synthetic")
    if scene_bias is not None:
        synth["scene_bias"] = scene_bias
    if not pool:
        synth["pool_videos_per_class"] = 0
    generate(load_config(SyntheticConfig, synth))
    fit = p["fit_teacher"]
    fit["out"] = str(folder / "teacher.pt")
    # Without a pool the teacher learns the students' own training videos and labels (the first benchmark).
    fit["root"] = str(folder / "synthetic" / ("pool" if pool else ""))
    fit["dataset_options"] = {} if pool else p["extract_teacher"]["dataset_options"]
    fit_teacher_model(load_config(FitConfig, fit))
    ext = p["extract_teacher"]
    ext.update(root=str(folder / "synthetic"), teacher_weights=fit["out"], out=str(folder / "features.h5"))
    run_extraction(load_config(ExtractConfig, ext))
    design = folder / "design.json"
    check_design(
        DesignConfig(
            cache=ext["out"],
            videos=str(folder / "synthetic" / "videos.csv"),
            ceiling=str(folder / "synthetic" / "ceiling.json"),
            out=str(design),
        )
    )
    seeds = [int(s) for s in p["compare_students"]["seeds"]]
    runs = [(arm, seed, folder / arm / f"seed{seed}", {"cache": ext["out"]}) for arm in ARMS for seed in seeds]
    train_runs(p, runs, jobs)
    return compare_students(
        CompareConfig(
            seeds=tuple(seeds),
            cache=ext["out"],
            hallucinet=str(folder / "hallucinet"),
            baseline=str(folder / "baseline"),
            teacher=str(folder / "teacher.json"),
            ceiling=str(folder / "synthetic" / "ceiling.json"),
            design=str(design),
            out=str(folder / "compare"),
        )
    )


def training_stages(seeds: list[int] | tuple[int, ...]) -> list[str]:
    """The DVC stages that train students for ``seeds``: both arms, the pre-training, the fine-tuning."""
    stages = [f"train_student@{arm}-{seed}" for arm in ARMS for seed in seeds]
    stages += [f"{stage}@{seed}" for stage in ("pretrain_student", "finetune_student") for seed in seeds]
    return stages


def stage_one() -> None:
    """``dvc repro`` of everything the students read (videos, teacher, both caches, design checks),
    one stage at a time on every core: the grid and the student stages train on its caches."""
    subprocess.run(["dvc", "repro", "check_benchmark", "extract_pool"], cwd=REPO, check=True)


def repro_training(seeds: list[int] | tuple[int, ...], jobs: int, logs: Path) -> None:
    """``dvc repro`` of the students of ``seeds``: stage one first, then the students ``jobs`` at a
    time (:func:`benchmarks.repro.repro`), each recorded in ``dvc.lock`` as usual."""
    stage_one()
    repro(training_stages(seeds), jobs=jobs, logs=logs, cwd=REPO)


def quick_run(seeds: tuple[int, ...], jobs: int, logs: Path) -> None:
    """``make run``: the default pipeline's stages for ``seeds`` only, and their comparison.

    The comparison goes to ``metrics/quick/`` (the full run's is ``metrics/report.json``); after
    the full run, as in ``all``, the stages are up to date and only it runs.
    """
    repro_training(seeds, jobs, logs)
    compare = ["compare-students", "--params", "params.yaml", "--seeds", ",".join(map(str, seeds))]
    subprocess.run([*compare, "--out", "metrics/quick"], cwd=REPO, check=True)


def knob_row(name: str, report: dict[str, Any]) -> dict[str, Any]:
    c = report["comparison"]["video_top1"]
    d = report.get("design", {})
    return {
        "setting": name,
        "teacher_beyond_label_r2": d.get("teacher_beyond_label_r2"),
        "teacher_test_video_top1": (d.get("teacher_video_top1") or {}).get("test"),
        "ceiling": report.get("single_frame_ceiling", {}).get("video_top1"),
        "baseline": report["baseline"]["video_top1"]["mean"],
        "hallucinet": report["hallucinet"]["video_top1"]["mean"],
        "diff_mean": c["diff_mean"],
        "ci95": c["ci95"],
        "gap_closed": c.get("gap_closed"),
        "wins": c.get("wins"),
        "n": c["n"],
    }


def knob_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | teacher R² beyond label | teacher test top-1 | ceiling | baseline | HalluciNet "
        "| HalluciNet − baseline [95% CI] | gap closed | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['setting']} | {r['teacher_beyond_label_r2']:.3f} | {r['teacher_test_video_top1']:.3f} "
            f"| {r['ceiling']:.3f} | {r['baseline']:.3f} | {r['hallucinet']:.3f} "
            f"| {r['diff_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r['gap_closed']:.2f} | {r['n']} |"
        )
    return "\n".join(lines)


def check_choice(params: dict[str, Any], selection: dict[str, Any]) -> None:
    """Stop unless ``train_student.arms.hallucinet`` carries what the grid chose on val."""
    arm = apply_arm(params["train_student"], "hallucinet")
    wrong = {k: (arm.get(k), v) for k, v in selection["chosen"].items() if arm.get(k) != v}
    if wrong:
        raise SystemExit(
            "params.yaml's train_student.arms.hallucinet differs from the grid's choice on val "
            + ", ".join(f"{k}: {a!r} in params, {c!r} chosen" for k, (a, c) in wrong.items())
            + "; put the choice into params.yaml (and commit it) before the test split is scored"
        )


def knobs(
    params: dict[str, Any], work: Path, out: Path, default_report: Path, seeds: list[int], jobs: int
) -> list[dict[str, Any]]:
    p = json.loads(json.dumps(params))
    p["compare_students"]["seeds"] = seeds
    rows = []
    for i, (name, switches) in enumerate(KNOBS.items()):
        report = run_pipeline(p, work / f"knob{i + 1}", jobs=jobs, **switches)
        rows.append(knob_row(name, report))
        out.write_text(json.dumps(rows, indent=2) + "\n")
    # The default row is the default run (dvc repro), read last: the two may run side by side.
    if not default_report.is_file():
        raise SystemExit(f"{default_report} does not exist: run `make run` (dvc repro), then this again")
    rows.insert(0, knob_row("default: pool and scene shortcut", json.loads(default_report.read_text())))
    out.write_text(json.dumps(rows, indent=2) + "\n")
    table = knob_table(rows)
    out.with_suffix(".md").write_text(table + "\n")
    for line in table.splitlines():
        logger.info("%s", line)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["grid", "knobs", "quick", "all"])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "protocol", help="scratch folder")
    parser.add_argument("--out", type=Path, default=REPO / "metrics", help="folder for selection.json, knobs.json")
    parser.add_argument(
        "--knob-seeds", default="0,1,2,3,4", help="comma-separated paired seeds of each switched-off pipeline"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=cpu_count(),
        help="student runs trained side by side (grid, switches, and the DVC stages), each on cores // jobs threads",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%X")
    params = read_params(args.params)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.part in ("grid", "all"):
        stage_one()  # the grid chooses on the very cache the default run trains on
        selection = grid(params, args.work, args.out / "selection.json", args.jobs)
    if args.part == "all":
        check_choice(params, selection)
        repro_training([int(s) for s in params["compare_students"]["seeds"]], args.jobs, args.work / "logs")
        subprocess.run(["dvc", "repro"], cwd=REPO, check=True)  # compare-students: the test split, once
    if args.part in ("quick", "all"):
        quick_run(QUICK_SEEDS, args.jobs, args.work / "logs")
    if args.part in ("knobs", "all"):
        seeds = [int(s) for s in args.knob_seeds.split(",")]
        knobs(params, args.work, args.out / "knobs.json", args.out / "report.json", seeds, args.jobs)
    logger.info("protocol %s: %.1f min", args.part, (time.perf_counter() - t0) / 60)


if __name__ == "__main__":
    main()

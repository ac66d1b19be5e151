"""``report``: teacher vs single-frame baseline vs HalluciNet, over seeds, from the runs' JSON files.

Reads only files the stages wrote: the teacher's ``<teacher>.json`` (fit-teacher), and each
student run's ``metrics.json`` and ``log.csv`` (train-student). Writes ``report.json`` (mean,
standard deviation and per-seed values of each figure) and PNG plots, and logs a table.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: Per-run figures summarised over seeds (those a run has).
FIGURES = (
    "video_top1",
    "clip_top1",
    "video_top5",
    "spearman",
    "pearson",
    "mae",
    "fidelity_cosine",
    "fidelity_r2",
    "teacher_video_top1",
    "cost_gflops",
    "cost_latency_ms",
)


@dataclass(frozen=True)
class ReportConfig:
    """``report`` settings; params.yaml section ``report``.

    ``hallucinet`` and ``baseline`` are folders holding one run folder per seed (``seed0``...);
    ``seeds`` says which (the DVC train stages iterate over the same list), so runs of seeds no
    longer in the params are not reported.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    teacher: str = "models/teacher.json"
    hallucinet: str = "models/student"
    baseline: str = "models/baseline"
    out: str = "metrics"


def spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the values themselves."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def load_runs(folder: str | Path, seeds: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """``{"seedN": {"metrics": ..., "log": [rows]}}`` for each seed's run folder ``<folder>/seedN``."""
    if not seeds:
        raise ValueError("report needs at least one seed")
    runs = {}
    for seed in seeds:
        run = Path(folder) / f"seed{seed}"
        metrics_path, log_path = run / "metrics.json", run / "log.csv"
        if not metrics_path.is_file():
            raise FileNotFoundError(f"{metrics_path} does not exist: has the run of seed {seed} finished?")
        log = list(csv.DictReader(log_path.open())) if log_path.is_file() else []
        runs[run.name] = {"metrics": json.loads(metrics_path.read_text()), "log": log}
    return runs


def summarise(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": sorted(runs)}
    for name in FIGURES:
        values = [r["metrics"][name] for r in runs.values() if isinstance(r["metrics"].get(name), int | float)]
        if values:
            out[name] = spread(values)
    return out


def build_report(cfg: ReportConfig) -> dict[str, Any]:
    """Compare the runs, write ``report.json`` and plots under ``cfg.out``, and return the report."""
    teacher_path = Path(cfg.teacher)
    if not teacher_path.is_file():
        raise FileNotFoundError(f"teacher metrics {teacher_path} do not exist (fit-teacher writes them)")
    teacher = json.loads(teacher_path.read_text())
    hallucinet, baseline = load_runs(cfg.hallucinet, cfg.seeds), load_runs(cfg.baseline, cfg.seeds)
    h, b = summarise(hallucinet), summarise(baseline)
    report: dict[str, Any] = {
        "teacher": {
            "name": teacher.get("teacher"),
            "test_clip_accuracy": teacher.get("test_clip_accuracy"),
            "chance": teacher.get("chance"),
            "cost_gflops": teacher.get("cost_per_clip", {}).get("gflops"),
            "cost_latency_ms": teacher.get("cost_per_clip", {}).get("latency_ms"),
        },
        "hallucinet": h,
        "baseline": b,
    }
    for name in ("video_top1", "clip_top1", "spearman", "fidelity_cosine"):
        if name in h and name in b:
            report[f"delta_{name}"] = h[name]["mean"] - b[name]["mean"]
    if "teacher_video_top1" in h:
        report["teacher"]["video_top1"] = h["teacher_video_top1"]["mean"]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plot_report(report, hallucinet, baseline, out / "plots")
    for line in table(report).splitlines():
        logger.info("%s", line)
    return report


def table(report: dict[str, Any]) -> str:
    """The report as a small text table: mean ± std over seeds."""
    rows = [f"{'':24s}{'baseline (lambda 0)':>24s}{'HalluciNet':>24s}"]
    for name in FIGURES:
        if name == "teacher_video_top1":
            continue  # the teacher's, shown on its own line
        cells = []
        for side in ("baseline", "hallucinet"):
            s = report[side].get(name)
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f} (n={s['n']})" if s else "-")
        if cells != ["-", "-"]:
            rows.append(f"{name:24s}{cells[0]:>24s}{cells[1]:>24s}")
    t = report["teacher"]
    video = f", video top-1 over the cached anchors {t['video_top1']:.4f}" if t.get("video_top1") is not None else ""
    rows.append(
        f"teacher {t['name']}: centre-clip test accuracy {t['test_clip_accuracy']:.4f}{video} "
        f"(chance {t['chance']:.4f}); {t['cost_gflops']:.2f} GFLOPs and {t['cost_latency_ms']:.1f} ms per clip"
    )
    return "\n".join(rows)


def plot_report(report: dict[str, Any], hallucinet: dict, baseline: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    colors = {"baseline": "tab:gray", "hallucinet": "tab:blue", "teacher": "tab:orange"}

    # Accuracy (or rank correlation) with the spread over seeds and each seed as a dot.
    key = "video_top1" if "video_top1" in report["hallucinet"] else "spearman"
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for i, side in enumerate(("baseline", "hallucinet")):
        s = report[side].get(key)
        if s:
            ax.bar(i, s["mean"], yerr=s["std"], color=colors[side], capsize=6, alpha=0.8)
            ax.scatter([i] * s["n"], s["values"], color="black", zorder=3, s=12)
    ticks = ["baseline\n(lambda 0)", "HalluciNet"]
    if key == "video_top1" and report["teacher"].get("video_top1") is not None:
        ax.bar(2, report["teacher"]["video_top1"], color=colors["teacher"], alpha=0.8)
        ticks.append(f"teacher\n({report['teacher']['name']})")
    if report["teacher"].get("chance") and key == "video_top1":
        ax.axhline(report["teacher"]["chance"], color="red", linestyle="--", linewidth=1, label="chance")
        ax.legend()
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set(ylabel=f"test {key} (mean ± std over seeds)", title="Task performance")
    _save(fig, out / "accuracy.png")

    # Hallucination fidelity.
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for j, name in enumerate(("fidelity_cosine", "fidelity_r2")):
        for i, side in enumerate(("baseline", "hallucinet")):
            s = report[side].get(name)
            if s:
                ax.bar(
                    j * 3 + i, s["mean"], yerr=s["std"], color=colors[side], capsize=5, label=side if j == 0 else None
                )
    ax.set_xticks([0.5, 3.5], ["cosine", "R²"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(ylabel="hallucinated vs teacher features (test)", title="Hallucination fidelity")
    ax.legend()
    _save(fig, out / "fidelity.png")

    # Training curves: evaluation metric per epoch, every seed.
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for side, runs in (("baseline", baseline), ("hallucinet", hallucinet)):
        for i, run in enumerate(runs.values()):
            rows = [r for r in run["log"] if r.get("eval_top1") or r.get("eval_spearman")]
            if rows:
                y = [float(r.get("eval_top1") or r.get("eval_spearman")) for r in rows]
                x = [int(r["epoch"]) for r in rows]
                ax.plot(x, y, color=colors[side], alpha=0.7, label=side if i == 0 else None)
    ax.set(xlabel="epoch", ylabel="test clip top-1 (or Spearman)", title="Training curves, all seeds")
    ax.legend()
    _save(fig, out / "curves.png")

    # Per-prediction cost: student (one frame) vs teacher (one clip), values written on the bars.
    s, t = report["hallucinet"], report["teacher"]
    panels = [
        (key, label)
        for key, label in (("gflops", "GFLOPs"), ("latency_ms", "latency (ms)"))
        if f"cost_{key}" in s and t.get(f"cost_{key}")
    ]
    if panels:
        fig = Figure(figsize=(3.5 * len(panels), 3.5))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (key, label) in zip(axes, panels, strict=True):
            values = [s[f"cost_{key}"]["mean"], t[f"cost_{key}"]]
            bars = ax.bar([0, 1], values, color=[colors["hallucinet"], colors["teacher"]])
            ax.bar_label(bars, labels=[f"{v:.3g}" for v in values])
            ax.set_xticks([0, 1], ["student\n(1 frame)", "teacher\n(1 clip)"])
            ax.set(ylabel=label)
            ax.margins(y=0.15)
        fig.suptitle("Per-prediction cost")
        _save(fig, out / "cost.png")


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})

"""``compare-students``: teacher vs single-frame baseline vs HalluciNet over seeds, with paired statistics.

Reads only files the stages wrote: each student run's ``metrics.json`` and ``log.csv``
(train-student), the feature cache's attributes (which teacher made the targets, its GFLOPs),
and, when present, the teacher's ``<teacher>.json`` (fit-teacher: its centre-clip accuracy) and
the dataset's ``ceiling.json`` (make-synthetic: the best video top-1 single frames allow).
Writes the comparison's report, ``report.json``, and PNG plots, and logs a table.

The comparison pairs the two arms by seed: runs of one seed share initialisation, batch order
and augmentation (only the loss differs), so the per-seed difference removes most of the
seed-to-seed variation. For each figure: the mean difference HalluciNet − baseline and its 95%
confidence interval (Student's t over the seeds); for the headline figure, also the share of
the baseline-to-ceiling gap HalluciNet closes.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pipeline.cache import read_info
from pipeline.errors import UserError
from pipeline.metric_schema import CLASSIFICATION, COST, FIDELITY, HEADLINE, REGRESSION, TEACHER

logger = logging.getLogger(__name__)

#: Per-run figures summarised over seeds (those a run has).
FIGURES = tuple(m.name for m in (*CLASSIFICATION, *REGRESSION, *FIDELITY, *TEACHER, *COST))
#: Figures compared between the arms (the teacher's and the mean predictor's are the same in both).
COMPARED = tuple(m.name for m in (*CLASSIFICATION, *REGRESSION, *FIDELITY[:2]))

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (any statistics table).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (table to 30, Cornish-Fisher above)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def wilson_ci(rate: float, n: int) -> list[float]:
    """95% Wilson score interval of a proportion ``rate`` observed on ``n`` trials (e.g. one teacher's accuracy)."""
    if n < 1:
        return [math.nan, math.nan]
    z = 1.959964
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def mean_ci(values: list[float]) -> tuple[float, list[float]]:
    """Mean and 95% confidence interval ``[low, high]`` of the mean (t over ``n - 1`` dof; NaN for n < 2)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, [math.nan, math.nan]
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, [mean - half, mean + half]


@dataclass(frozen=True)
class CompareConfig:
    """``compare-students`` settings; params.yaml section ``compare_students``.

    ``hallucinet`` and ``baseline`` are folders holding one run folder per seed (``seed0``...);
    ``seeds`` says which (the DVC train stages iterate over the same list), so runs of seeds no
    longer in the params are not reported. ``teacher`` (fit-teacher's metrics) and ``ceiling``
    (a dataset's ``ceiling.json``) are optional: a real dataset with a pretrained teacher has
    neither.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    cache: str = "data/features.h5"
    hallucinet: str = "models/hallucinet"
    baseline: str = "models/baseline"
    teacher: str | None = None
    ceiling: str | None = None
    out: str = "metrics"


def spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value), 95% CI of the mean, and the values themselves."""
    mean, ci = mean_ci(values)
    return {
        "mean": mean,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "ci95": ci,
        "n": len(values),
        "values": values,
    }


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} ({what}) is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} ({what}) holds no JSON object")
    return data


def load_runs(folder: str | Path, seeds: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    """``{seed: {"metrics": ..., "log": [rows]}}`` for each seed's run folder ``<folder>/seed<seed>``."""
    if not seeds:
        raise UserError("compare-students needs at least one seed")
    runs = {}
    for seed in seeds:
        run = Path(folder) / f"seed{seed}"
        metrics_path, log_path = run / "metrics.json", run / "log.csv"
        if not metrics_path.is_file():
            raise UserError(f"{metrics_path} does not exist: has the run of seed {seed} finished?")
        log = []
        if log_path.is_file():
            with open(log_path, newline="") as fh:
                log = list(csv.DictReader(fh))
        runs[seed] = {"metrics": _read_json(metrics_path, "train-student metrics"), "log": log}
    return runs


def check_runs(hallucinet: dict[int, dict], baseline: dict[int, dict], cache_key: str) -> str:
    """Refuse runs that cannot be compared; returns their task.

    The baseline must be lambda 0 and HalluciNet lambda > 0, every run must come from the same
    cache (its config key: same teacher, preprocessing and anchors) and be scored on one task.
    """
    for arm, runs, ok in (("baseline", baseline, lambda x: x == 0), ("HalluciNet", hallucinet, lambda x: x > 0)):
        for seed, run in runs.items():
            lam = run["metrics"].get("lambda")
            if not isinstance(lam, int | float) or not ok(lam):
                raise UserError(f"the {arm} run of seed {seed} was trained with lambda {lam}, not a {arm} run")
    keys = {run["metrics"].get("cache_key") for runs in (hallucinet, baseline) for run in runs.values()}
    if keys != {cache_key}:
        raise UserError(
            "the runs were trained on other caches than --cache (config keys "
            f"{sorted(str(k)[:12] for k in keys)} vs {cache_key[:12]}): retrain them or point --cache at theirs"
        )
    tasks = {run["metrics"].get("task") for runs in (hallucinet, baseline) for run in runs.values()}
    if len(tasks) != 1:
        raise UserError(f"the runs were scored on different tasks: {sorted(map(str, tasks))}")
    return tasks.pop()


def summarise(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": sorted(runs)}
    for name in FIGURES:
        values = [r["metrics"][name] for r in runs.values() if isinstance(r["metrics"].get(name), int | float)]
        if values:
            out[name] = spread(values)
    return out


def compare(
    hallucinet: dict[int, dict], baseline: dict[int, dict], headline: str, ceiling: float | None
) -> dict[str, Any]:
    """Paired per-seed differences HalluciNet − baseline: mean, 95% CI, and the headline's gap closed."""
    out: dict[str, Any] = {}
    for name in COMPARED:
        pairs = [(hallucinet[s]["metrics"].get(name), baseline[s]["metrics"].get(name)) for s in sorted(hallucinet)]
        pairs = [(h, b) for h, b in pairs if isinstance(h, int | float) and isinstance(b, int | float)]
        if not pairs:
            continue
        diffs = [h - b for h, b in pairs]
        mean, ci = mean_ci(diffs)
        entry = {"diff_mean": mean, "ci95": ci, "n": len(diffs), "diffs": diffs}
        if name == headline and ceiling is not None:
            base = statistics.fmean(b for _, b in pairs)
            entry["gap_closed"] = mean / (ceiling - base) if ceiling > base else math.nan
        out[name] = entry
    return out


def teacher_figures(cache_path: Path, teacher_json: Path | None, hallucinet: dict[int, dict]) -> dict[str, Any]:
    """The teacher's figures: from the cache (whatever made it), the runs' cached-logit scores, fit-teacher's file."""
    info = read_info(cache_path)
    first = next(iter(hallucinet.values()))["metrics"]
    out: dict[str, Any] = {
        "name": info.teacher,
        "weights": info.teacher_weights,
        "cost_gflops": info.teacher_gflops or None,
        "video_top1": first.get("teacher_video_top1"),
        "clip_top1": first.get("teacher_clip_top1"),
        "chance": 1 / len(info.classes) if info.classes else None,
    }
    if isinstance(out["video_top1"], float) and first.get("num_videos"):
        # One teacher, no seeds: its interval is the binomial one over the test videos.
        out["video_top1_ci95"] = wilson_ci(out["video_top1"], int(first["num_videos"]))
    if teacher_json is not None:
        fitted = _read_json(teacher_json, "fit-teacher metrics")
        out["centre_clip_top1"] = fitted.get("test_clip_accuracy")
        out["centre_clip_top1_mirrored"] = fitted.get("test_clip_accuracy_mirrored")
        out["cost_latency_ms"] = (fitted.get("cost_per_clip") or {}).get("latency_ms")
    return out


def compare_students(cfg: CompareConfig) -> dict[str, Any]:
    """Compare the runs, write ``report.json`` and plots under ``cfg.out``, and return the report."""
    cache = Path(cfg.cache)
    if not cache.is_file():
        raise UserError(f"feature cache {cache} does not exist (extract-teacher writes it)")
    teacher_json = Path(cfg.teacher) if cfg.teacher else None
    if teacher_json is not None and not teacher_json.is_file():
        raise UserError(f"teacher metrics {teacher_json} do not exist (fit-teacher writes them)")
    hallucinet, baseline = load_runs(cfg.hallucinet, cfg.seeds), load_runs(cfg.baseline, cfg.seeds)
    task = check_runs(hallucinet, baseline, read_info(cache).config_key)
    headline = HEADLINE.get(task, "fidelity_cosine")
    ceiling = None
    if cfg.ceiling:
        found = _read_json(Path(cfg.ceiling), "dataset ceiling").get("single_frame_ceiling", {})
        ceiling = found.get(headline)
    report: dict[str, Any] = {
        "task": task,
        "headline": headline,
        "teacher": teacher_figures(cache, teacher_json, hallucinet),
        "hallucinet": summarise(hallucinet),
        "baseline": summarise(baseline),
        "comparison": compare(hallucinet, baseline, headline, ceiling),
    }
    if ceiling is not None:
        report["single_frame_ceiling"] = {headline: ceiling}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plot_report(report, hallucinet, baseline, out / "plots")
    for line in table(report).splitlines():
        logger.info("%s", line)
    return report


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if not isinstance(x, int | float) or math.isnan(x) else f"{x:.{digits}f}"


def table(report: dict[str, Any]) -> str:
    """The report as text: mean ± std over seeds per arm, the paired difference, the teacher and ceiling."""
    rows = [f"{'':22s}{'baseline (lambda 0)':>26s}{'HalluciNet':>26s}{'paired diff [95% CI]':>32s}"]
    for name in FIGURES:
        if name.startswith("teacher_"):
            continue  # the teacher's, shown on its own line
        cells = []
        for side in ("baseline", "hallucinet"):
            s = report[side].get(name)
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f} (n={s['n']})" if s else "-")
        c = report["comparison"].get(name)
        diff = f"{c['diff_mean']:+.4f} [{_fmt(c['ci95'][0])}, {_fmt(c['ci95'][1])}]" if c else ""
        if cells != ["-", "-"]:
            rows.append(f"{name:22s}{cells[0]:>26s}{cells[1]:>26s}{diff:>32s}")
    headline = report["headline"]
    c = report["comparison"].get(headline, {})
    if "gap_closed" in c:
        rows.append(
            f"{headline}: single-frame ceiling {_fmt(report['single_frame_ceiling'][headline])}; "
            f"HalluciNet closes {_fmt(c['gap_closed'], 3)} of the baseline-to-ceiling gap"
        )
    t = report["teacher"]
    parts = [f"teacher {t['name']} ({t['weights']})"]
    if t.get("centre_clip_top1") is not None:
        parts.append(f"centre-clip test top-1 {_fmt(t['centre_clip_top1'])}")
    if t.get("video_top1") is not None:
        parts.append(f"video top-1 over the cached anchors {_fmt(t['video_top1'])}")
    if t.get("chance"):
        parts.append(f"chance {_fmt(t['chance'])}")
    if t.get("cost_gflops"):
        parts.append(f"{t['cost_gflops']:.2f} GFLOPs per clip")
    rows.append(", ".join(parts))
    return "\n".join(rows)


def plot_report(report: dict[str, Any], hallucinet: dict, baseline: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    colors = {"baseline": "tab:gray", "hallucinet": "tab:blue", "teacher": "tab:orange", "ceiling": "tab:green"}
    key = report["headline"]
    t = report["teacher"]

    # The headline with 95% CIs of the mean over seeds (each seed a dot), the ceiling and the
    # teacher (binomial CI over the test videos); beside it, the paired per-seed differences.
    fig = Figure(figsize=(9, 4))
    ax, ax_diff = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.3]})
    ticks = []
    for i, side in enumerate(("baseline", "hallucinet")):
        s = report[side].get(key)
        if s:
            ax.bar(i, s["mean"], yerr=_yerr(s["mean"], s["ci95"]), color=colors[side], capsize=6, alpha=0.8)
            ax.scatter([i] * s["n"], s["values"], color="black", zorder=3, s=12)
        ticks.append("baseline\n(lambda 0)" if side == "baseline" else "HalluciNet")
    extra = [("single-frame\nceiling", (report.get("single_frame_ceiling") or {}).get(key), None, "ceiling")]
    if key == "video_top1":
        extra.append((f"teacher\n({t['name']})", t.get("video_top1"), t.get("video_top1_ci95"), "teacher"))
    for label, value, ci, color in extra:
        if value is not None:
            err = _yerr(value, ci) if ci else None
            ax.bar(len(ticks), value, yerr=err, color=colors[color], capsize=6, alpha=0.8)
            ticks.append(label)
    if t.get("chance") and key == "video_top1":
        ax.axhline(t["chance"], color="red", linestyle="--", linewidth=1, label="chance")
        ax.legend()
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set(ylabel=f"test {key} (mean, 95% CI)", title="Task performance")
    c = report["comparison"].get(key)
    if c:
        ax_diff.axhline(0, color="black", linewidth=0.8)
        ax_diff.scatter(range(c["n"]), c["diffs"], color="tab:blue", zorder=3)
        ax_diff.axhline(c["diff_mean"], color="tab:blue", linewidth=1.5, label="mean")
        if not math.isnan(c["ci95"][0]):
            ax_diff.axhspan(*c["ci95"], color="tab:blue", alpha=0.15, label="95% CI")
        ax_diff.set_xticks(range(c["n"]), [str(s) for s in report["hallucinet"]["seeds"]])
        ax_diff.set(xlabel="seed", ylabel=f"HalluciNet − baseline, {key}", title="Paired by seed")
        ax_diff.legend(fontsize=8)
    _save(fig, out / "accuracy.png")

    # Hallucination fidelity, with the mean-feature predictor as the floor.
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for j, metric in enumerate(("cosine", "r2")):
        for i, side in enumerate(("baseline", "hallucinet")):
            s = report[side].get(f"fidelity_{metric}")
            if s:
                label = side if j == 0 else None
                ax.bar(j * 4 + i, s["mean"], yerr=s["std"], color=colors[side], capsize=5, label=label)
        floor = report["hallucinet"].get(f"mean_feature_{metric}")
        if floor:
            ax.bar(j * 4 + 2, floor["mean"], color="tab:brown", label="mean feature" if j == 0 else None)
    ax.set_xticks([1, 5], ["cosine", "R² (vs train mean)"])
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
    s = report["hallucinet"]
    if "cost_gflops" in s and t.get("cost_gflops"):
        fig = Figure(figsize=(3.5, 3.5))
        ax = fig.subplots()
        values = [s["cost_gflops"]["mean"], t["cost_gflops"]]
        bars = ax.bar([0, 1], values, color=[colors["hallucinet"], colors["teacher"]])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values])
        ax.set_xticks([0, 1], ["student\n(1 frame)", "teacher\n(1 clip)"])
        ax.set(ylabel="GFLOPs", title="Per-prediction cost")
        ax.margins(y=0.15)
        _save(fig, out / "cost.png")


def _yerr(mean: float, ci: list[float]) -> list[list[float]] | None:
    """Matplotlib's asymmetric error bar for a ``[low, high]`` interval (none when it is undefined)."""
    if ci is None or math.isnan(ci[0]):
        return None
    return [[mean - ci[0]], [ci[1] - mean]]


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})

"""``compare-students``: teacher vs single-frame baseline vs HalluciNet over seeds, with paired statistics.

Reads only files the stages wrote: each student run's ``metrics.json`` and ``log.csv``
(train-student), the feature cache's attributes (which teacher made the targets, its GFLOPs),
and, when present, the teacher's ``<teacher>.json`` (fit-teacher: its centre-clip accuracy) and
the dataset's ``ceiling.json`` (make-synthetic: the best video top-1 single frames allow).
Writes the comparison's report, ``report.json``, its headline flat in ``summary.json`` (what
``dvc exp show`` shows), and PNG plots, and logs a table.

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

import numpy as np
from matplotlib.figure import Figure

from pipeline.cache import read_info
from pipeline.checkpoint import load_safely
from pipeline.config import option
from pipeline.errors import UserError
from pipeline.metric_schema import CLASSIFICATION, COST, FIDELITY, HEADLINE, REGRESSION, TEACHER
from student_train.evaluate import evaluate_checkpoint
from student_train.plots import save_figure

logger = logging.getLogger(__name__)

#: Per-run figures summarised over seeds (those a run has).
FIGURES = (*CLASSIFICATION, *REGRESSION, *FIDELITY, *TEACHER, *COST)
#: Figures compared between the arms (the teacher's and the mean predictor's are the same in both).
COMPARED = (*CLASSIFICATION, *REGRESSION, *FIDELITY[:2])

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

    ``hallucinet``, ``baseline`` and (optional) ``pretrained`` are folders holding one run folder
    per seed (``seed0``...); ``seeds`` says which (the DVC train stages iterate over the same
    list), so runs of seeds no longer in the params are not reported. Each run's checkpoint is
    scored here on ``split``, once: the runs themselves only ever looked at train and val
    (``splits_read`` in their metrics), and a run that saw ``split`` is refused. ``teacher``
    (fit-teacher's metrics), ``ceiling`` (a dataset's ``ceiling.json``), ``design``
    (check-benchmark's checks) and ``selection`` (the val grid's choice, benchmarks/protocol.py)
    are optional: a real dataset with a pretrained teacher has none of them.
    """

    seeds: tuple[int, ...] = option((0, 1, 2), "Comma-separated seeds whose runs (seedN folders) to compare.")
    cache: str = option(
        "data/features.h5",
        "The feature cache the runs trained on (names the teacher; the runs must match it).",
        path="file",
    )
    split: str = option(
        "test",
        "The split every run is scored on, here and only here (the runs must not have read it).",
        choices=("test", "val"),
    )
    hallucinet: str = option("models/hallucinet", "Folder of HalluciNet runs, one per seed.", path="dir")
    baseline: str = option("models/baseline", "Folder of lambda-0 runs, one per seed (seedN/).", path="dir")
    pretrained: str | None = option(
        None,
        "Optional: folder of runs fine-tuned (lambda 0) from a hallucination-only pre-training, one per seed.",
        path="dir",
    )
    teacher: str | None = option(
        None, "Optional: fit-teacher's metrics (<teacher>.json), its own test accuracy.", path="file"
    )
    ceiling: str | None = option(
        None,
        "Optional: a dataset's ceiling.json (make-synthetic writes one), for the share of the gap closed.",
        path="file",
    )
    design: str | None = option(
        None, "Optional: check-benchmark's design checks (JSON), copied into the report.", path="file"
    )
    selection: str | None = option(
        None, "Optional: the val grid's selection (JSON), copied into the report.", path="file"
    )
    out: str = option("metrics", "Folder for report.json, summary.json and plots/.", path="dir")
    device: str = option("auto", "auto (CUDA if available), cpu, cuda or cuda:N: where the runs are scored.")


#: The arms compare-students knows, in the order the report shows them; each but the baseline is
#: compared with the baseline, seed by seed.
ARMS = ("baseline", "hallucinet", "pretrained")
ARM_TITLES = {"baseline": "baseline (lambda 0)", "hallucinet": "HalluciNet", "pretrained": "pre-trained, fine-tuned"}


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
    if not path.is_file():
        raise UserError(f"{path} ({what}) does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} ({what}) is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} ({what}) holds no JSON object")
    return data


def load_runs(folder: str | Path, seeds: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    """``{seed: {"metrics", "log", "checkpoint"}}`` for each seed's run folder ``<folder>/seed<seed>``."""
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
        metrics = _read_json(metrics_path, "train-student metrics")
        runs[seed] = {"metrics": metrics, "log": log, "checkpoint": run / "checkpoint.pt"}
    return runs


def check_runs(arms: dict[str, dict[int, dict]], cache_key: str, split: str) -> str:
    """Refuse runs that cannot be compared, or that saw ``split``; returns their task.

    The baseline and the pre-trained arm fine-tune with lambda 0, HalluciNet with lambda > 0;
    every run must come from the same cache (its config key: same teacher, preprocessing and
    anchors), be scored on one task, and never have read ``split`` while training.
    """
    rules = {"baseline": lambda x: x == 0, "hallucinet": lambda x: x > 0, "pretrained": lambda x: x == 0}
    for arm, runs in arms.items():
        for seed, run in runs.items():
            lam = run["metrics"].get("lambda")
            if not isinstance(lam, int | float) or not rules[arm](lam):
                raise UserError(f"the {ARM_TITLES[arm]} run of seed {seed} was trained with lambda {lam}")
            seen = run["metrics"].get("splits_read")
            if not isinstance(seen, str) or split in seen.split(","):
                raise UserError(
                    f"the {ARM_TITLES[arm]} run of seed {seed} read the {split} split while training "
                    f"(splits_read {seen}): the protocol reads it once, here; retrain it with --eval-split val"
                )
    everything = [run for runs in arms.values() for run in runs.values()]
    keys = {run["metrics"].get("cache_key") for run in everything}
    if keys != {cache_key}:
        raise UserError(
            "the runs were trained on other caches than --cache (config keys "
            f"{sorted(str(k)[:12] for k in keys)} vs {cache_key[:12]}): retrain them or point --cache at theirs"
        )
    tasks = {run["metrics"].get("task") for run in everything}
    if len(tasks) != 1:
        raise UserError(f"the runs were scored on different tasks: {sorted(map(str, tasks))}")
    return tasks.pop()


def score_runs(arms: dict[str, dict[int, dict]], cfg: CompareConfig) -> None:
    """Score every run's checkpoint on ``cfg.split``: the only time the comparison's split is read."""
    for arm, runs in arms.items():
        for seed, run in runs.items():
            if not run["checkpoint"].is_file():
                raise UserError(f"{run['checkpoint']} does not exist: the {ARM_TITLES[arm]} run of seed {seed}")
            logger.info("scoring %s seed %d on %s", arm, seed, cfg.split)
            scored = evaluate_checkpoint(run["checkpoint"], cfg.cache, split=cfg.split, device=cfg.device)
            # The cost of a prediction is the run's (measured once, after training), not the split's.
            run["scored"] = {**scored, **{k: v for k, v in run["metrics"].items() if k.startswith("cost_")}}


def summarise(runs: dict[int, dict[str, Any]], key: str = "scored") -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": sorted(runs)}
    for name in FIGURES:
        values = [r[key][name] for r in runs.values() if isinstance(r[key].get(name), int | float)]
        if values:
            out[name] = spread(values)
    return out


def compare(
    arm: dict[int, dict], baseline: dict[int, dict], headline: str, ceiling: float | None, key: str = "scored"
) -> dict[str, Any]:
    """Paired per-seed differences arm − baseline: mean, 95% CI, and the headline's gap closed."""
    out: dict[str, Any] = {}
    for name in COMPARED:
        pairs = [(arm[s][key].get(name), baseline[s][key].get(name)) for s in sorted(arm)]
        pairs = [(h, b) for h, b in pairs if isinstance(h, int | float) and isinstance(b, int | float)]
        if not pairs:
            continue
        diffs = [h - b for h, b in pairs]
        mean, ci = mean_ci(diffs)
        entry = {"diff_mean": mean, "ci95": ci, "n": len(diffs), "diffs": diffs, "wins": sum(d > 0 for d in diffs)}
        if name == headline and ceiling is not None:
            base = statistics.fmean(b for _, b in pairs)
            entry["gap_closed"] = mean / (ceiling - base) if ceiling > base else math.nan
        out[name] = entry
    return out


def convergence(runs: dict[int, dict], metric: str = "eval_top1") -> dict[str, Any]:
    """Whether the runs converged: training loss and the val curve over the last fifth of training.

    ``loss_change_last_fifth``: the mean relative change of the training loss from the first to
    the last epoch of the last fifth (0: flat). ``val_change_last_fifth``: the same for the val
    curve, as a difference. Both over seeds.
    """
    loss_changes, val_changes = [], []
    for run in runs.values():
        rows = run["log"]
        if len(rows) < 5:
            continue
        tail = rows[len(rows) - max(2, len(rows) // 5) :]
        first, last = float(tail[0]["loss"]), float(tail[-1]["loss"])
        loss_changes.append((last - first) / first if first else 0.0)
        curve = [float(r[metric]) for r in tail if r.get(metric)]
        if len(curve) >= 2:
            val_changes.append(curve[-1] - curve[0])
    out: dict[str, Any] = {}
    if loss_changes:
        out["loss_change_last_fifth"] = spread(loss_changes)
    if val_changes:
        out["val_change_last_fifth"] = spread(val_changes)
    out["epochs"] = len(next(iter(runs.values()))["log"])
    return out


def teacher_figures(cache_path: Path, teacher_json: Path | None, runs: dict[int, dict]) -> dict[str, Any]:
    """The teacher's figures: from the cache (whatever made it), the runs' cached-logit scores, fit-teacher's file."""
    info = read_info(cache_path)
    first = next(iter(runs.values()))["scored"]
    out: dict[str, Any] = {
        "name": info.teacher,
        "weights": info.teacher_weights,
        "cost_gflops": info.teacher_gflops or None,
        "video_top1": first.get("teacher_video_top1"),
        "clip_top1": first.get("teacher_clip_top1"),
        "chance": 1 / len(info.classes) if info.classes else None,
    }
    if teacher_json is not None:
        fitted = _read_json(teacher_json, "fit-teacher metrics")
        out["centre_clip_top1"] = fitted.get("test_clip_accuracy")
        out["centre_clip_top1_mirrored"] = fitted.get("test_clip_accuracy_mirrored")
        out["cost_latency_ms"] = (fitted.get("cost_per_clip") or {}).get("latency_ms")
    return out


def protocol(arms: dict[str, dict[int, dict]], cfg: CompareConfig, selection: dict[str, Any] | None) -> dict[str, Any]:
    """Which split chose what: the runs' curves and any selection came from val; ``cfg.split`` is read here only."""
    curves = sorted({str(run["metrics"].get("split")) for runs in arms.values() for run in runs.values()})
    selected_on = curves[0] if len(curves) == 1 else "mixed"
    if selection is not None and selection.get("split") != selected_on:
        selected_on = "mixed"
    out = {
        "selected_on": selected_on,
        "curves_split": curves,
        "scored_split": cfg.split,
        "scored_by": "compare-students",
        "seeds": list(cfg.seeds),
    }
    if selection is not None:
        out["selection"] = selection
        chosen = selection.get("chosen") or {}
        if "hallucinet" in arms and chosen:
            # The HalluciNet runs must carry what val chose (their checkpoints hold their config).
            configs = [load_safely(run["checkpoint"])["config"] for run in arms["hallucinet"].values()]
            out["hallucinet_matches_selection"] = all(c.get(k) == v for c in configs for k, v in chosen.items())
            if not out["hallucinet_matches_selection"]:
                logger.warning("the HalluciNet runs were not trained with the settings val chose: %s", chosen)
    return out


def compare_students(cfg: CompareConfig) -> dict[str, Any]:
    """Score the runs on ``cfg.split``, compare them; write ``report.json``, ``summary.json``, plots in ``cfg.out``."""
    cache = Path(cfg.cache)
    if not cache.is_file():
        raise UserError(f"feature cache {cache} does not exist (extract-teacher writes it)")
    folders = {"baseline": cfg.baseline, "hallucinet": cfg.hallucinet, "pretrained": cfg.pretrained}
    arms = {arm: load_runs(folder, cfg.seeds) for arm, folder in folders.items() if folder}
    task = check_runs(arms, read_info(cache).config_key, cfg.split)
    selection = _read_json(Path(cfg.selection), "the val selection") if cfg.selection else None
    score_runs(arms, cfg)
    headline = HEADLINE.get(task, "fidelity_cosine")
    ceiling = None
    if cfg.ceiling:
        ceiling = _read_json(Path(cfg.ceiling), "dataset ceiling").get("single_frame_ceiling", {}).get(headline)
    teacher_json = Path(cfg.teacher) if cfg.teacher else None
    baseline = arms["baseline"]
    comparisons = {arm: compare(runs, baseline, headline, ceiling) for arm, runs in arms.items() if arm != "baseline"}
    report: dict[str, Any] = {
        "task": task,
        "headline": headline,
        "split": cfg.split,
        "teacher": teacher_figures(cache, teacher_json, baseline),
        **{arm: summarise(runs) for arm, runs in arms.items()},
        "val": {arm: summarise(runs, "metrics") for arm, runs in arms.items()},
        "comparison": comparisons.get("hallucinet", {}),
        "comparisons": comparisons,
        "protocol": protocol(arms, cfg, selection),
        "baseline_convergence": convergence(baseline),
    }
    if cfg.design:
        report["design"] = _read_json(Path(cfg.design), "check-benchmark's design checks")
        # A teacher of finer classes (the pool's) has no top-1 of its own over the students'
        # classes in the runs' metrics: check-benchmark's, over the fine classes of each class.
        design_top1 = (report["design"].get("teacher_video_top1") or {}).get(cfg.split)
        if report["teacher"].get("video_top1") is None and design_top1 is not None:
            report["teacher"]["video_top1"] = design_top1
            report["teacher"]["video_top1_from"] = "check-benchmark (fine classes summed per class)"
    top1, videos = report["teacher"].get("video_top1"), next(iter(baseline.values()))["scored"].get("num_videos")
    if isinstance(top1, float) and videos:
        # One teacher, no seeds: its interval is the binomial one over the scored videos.
        report["teacher"]["video_top1_ci95"] = wilson_ci(top1, int(videos))
    if ceiling is not None:
        report["single_frame_ceiling"] = {headline: ceiling}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "summary.json").write_text(json.dumps(summary(report), indent=2) + "\n")
    plot_report(report, arms, out / "plots")
    for line in table(report).splitlines():
        logger.info("%s", line)
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report's headline, flat: one ``dvc exp show`` column per figure (``report.json`` has the rest).

    Per arm the mean of the headline figure over the seeds; per arm against the baseline the
    paired difference, its 95% CI as two numbers, the seeds it is ahead on and the share of the
    baseline-to-ceiling gap it closes; the achievable ceiling, the teacher's top-1 and how much
    of the teacher's features a frame could learn beyond the label (the design checks).
    """
    headline = report["headline"]
    out: dict[str, Any] = {"metric": headline, "seeds": report["baseline"][headline]["n"]}
    out.update({arm: report[arm][headline]["mean"] for arm in ARMS if arm in report})
    for arm, comparison in report["comparisons"].items():
        c = comparison.get(headline)
        if c:
            low, high = c["ci95"]
            out |= {f"{arm}_diff": c["diff_mean"], f"{arm}_ci_low": low, f"{arm}_ci_high": high}
            out[f"{arm}_wins"] = c["wins"]
            if "gap_closed" in c:
                out[f"{arm}_gap_closed"] = c["gap_closed"]
    if "single_frame_ceiling" in report:
        out["ceiling"] = report["single_frame_ceiling"][headline]
    if isinstance(report["teacher"].get("video_top1"), float):
        out["teacher_top1"] = report["teacher"]["video_top1"]
    beyond = (report.get("design") or {}).get("teacher_beyond_label_r2")
    if isinstance(beyond, float):
        out["beyond_label_r2"] = beyond
    return out


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if not isinstance(x, int | float) or math.isnan(x) else f"{x:.{digits}f}"


def table(report: dict[str, Any]) -> str:
    """The report as text: mean ± std over seeds per arm, the paired differences, the teacher, ceiling and checks."""
    arms = [arm for arm in ARMS if arm in report]
    others = [arm for arm in arms if arm != "baseline"]
    split = report.get("split", "test")
    head = f"{split + ' split':22s}" + "".join(f"{ARM_TITLES[a]:>26s}" for a in arms)
    rows = [head + "".join(f"{ARM_TITLES[a][:14] + ' - base [95% CI]':>34s}" for a in others)]
    for name in FIGURES:
        if name.startswith(("teacher_", "cost_latency")):
            continue  # the teacher's, shown on its own line; latency is timing noise
        cells = []
        for arm in arms:
            s = report[arm].get(name)
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f} (n={s['n']})" if s else "-")
        diffs = []
        for arm in others:
            c = report["comparisons"].get(arm, {}).get(name)
            diffs.append(f"{c['diff_mean']:+.4f} [{_fmt(c['ci95'][0])}, {_fmt(c['ci95'][1])}]" if c else "")
        if any(c != "-" for c in cells):
            rows.append(f"{name:22s}" + "".join(f"{c:>26s}" for c in cells) + "".join(f"{d:>34s}" for d in diffs))
    headline = report["headline"]
    for arm in others:
        c = report["comparisons"].get(arm, {}).get(headline, {})
        if "gap_closed" in c:
            rows.append(
                f"{headline}: achievable single-frame ceiling {_fmt(report['single_frame_ceiling'][headline])}; "
                f"{ARM_TITLES[arm]} ahead on {c['wins']} of {c['n']} seeds, closes {_fmt(c['gap_closed'], 3)} "
                "of the baseline-to-ceiling gap"
            )
    t = report["teacher"]
    parts = [f"teacher {t['name']} ({t['weights']})"]
    if t.get("centre_clip_top1") is not None:
        parts.append(f"centre-clip top-1 on its own test split {_fmt(t['centre_clip_top1'])}")
    if t.get("video_top1") is not None:
        parts.append(f"video top-1 over the cached anchors {_fmt(t['video_top1'])}")
    if t.get("chance"):
        parts.append(f"chance {_fmt(t['chance'])}")
    if t.get("cost_gflops"):
        parts.append(f"{t['cost_gflops']:.2f} GFLOPs per clip")
    rows.append(", ".join(parts))
    d = report.get("design")
    if d:
        top1 = d.get("teacher_video_top1") or {}
        rows.append(
            f"design (no student): teacher features R^2 class {_fmt(d['teacher_r2_class'], 3)}, "
            f"class x (speed, cue) {_fmt(d['teacher_r2_class_speed_cue'], 3)}: "
            f"{_fmt(d['teacher_beyond_label_r2'], 3)} beyond the label; teacher video top-1 on the students' "
            f"classes val {_fmt(top1.get('val'), 3)}, test {_fmt(top1.get('test'), 3)}; "
            f"training videos in their class's scene {_fmt(d.get('scene_rate_train'), 2)}"
        )
    conv = report.get("baseline_convergence") or {}
    if "loss_change_last_fifth" in conv:
        val = conv.get("val_change_last_fifth")
        rows.append(
            f"baseline over the last fifth of its {conv['epochs']} epochs: training loss "
            f"{conv['loss_change_last_fifth']['mean']:+.1%}, val clip top-1 " + (f"{val['mean']:+.4f}" if val else "-")
        )
    p = report["protocol"]
    rows.append(
        f"protocol: curves and choices on {p['selected_on']}; {p['scored_split']} scored once, by "
        f"{p['scored_by']}, over {len(p['seeds'])} paired seeds"
    )
    return "\n".join(rows)


#: One colour per arm (and for the teacher and the ceiling), the same in every figure.
COLORS = {
    "baseline": "tab:gray",
    "hallucinet": "tab:blue",
    "pretrained": "tab:purple",
    "teacher": "tab:orange",
    "ceiling": "tab:green",
}


def plot_report(report: dict[str, Any], arms: dict[str, dict[int, dict]], out: Path) -> None:
    """The comparison's four figures in ``out``: accuracy (with the paired differences), fidelity, curves, cost."""
    out.mkdir(parents=True, exist_ok=True)
    names = [arm for arm in ARMS if arm in arms]
    _plot_accuracy(report, names, out)
    _plot_fidelity(report, names, out)
    _plot_curves(report, arms, names, out)
    _plot_cost(report, out)


def _plot_accuracy(report: dict[str, Any], names: list[str], out: Path) -> None:
    """The headline on the scored split with 95% CIs of the mean over seeds (each seed a dot), the
    achievable ceiling and the teacher; beside it, the paired per-seed differences of each arm."""
    key, t = report["headline"], report["teacher"]
    others = [arm for arm in names if arm != "baseline"]
    fig = Figure(figsize=(10, 4))
    ax, ax_diff = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.6]})
    ticks = []
    for i, arm in enumerate(names):
        s = report[arm].get(key)
        if s:
            ax.bar(i, s["mean"], yerr=_yerr(s["mean"], s["ci95"]), color=COLORS[arm], capsize=6, alpha=0.8)
            ax.scatter([i] * s["n"], s["values"], color="black", zorder=3, s=12)
        ticks.append(ARM_TITLES[arm].replace(" (", "\n(").replace(", ", ",\n"))
    extra = [("achievable\nceiling", (report.get("single_frame_ceiling") or {}).get(key), "ceiling")]
    if key == "video_top1":
        extra.append((f"teacher\n({t['name']})", t.get("video_top1"), "teacher"))
    for label, value, color in extra:
        if value is not None:
            ci = t.get("video_top1_ci95") if color == "teacher" else None
            err = _yerr(value, ci) if ci else None
            ax.bar(len(ticks), value, yerr=err, color=COLORS[color], capsize=6, alpha=0.8)
            ticks.append(label)
    if t.get("chance") and key == "video_top1":
        ax.axhline(t["chance"], color="red", linestyle="--", linewidth=1, label="chance")
        ax.legend()
    ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
    ax.set(ylabel=f"{report.get('split', 'test')} {key} (mean, 95% CI)", title="Task performance, scored once")
    ax_diff.axhline(0, color="black", linewidth=0.8)
    for j, arm in enumerate(others):
        c = report["comparisons"].get(arm, {}).get(key)
        if not c:
            continue
        x = [j + (i - (c["n"] - 1) / 2) * 0.04 for i in range(c["n"])]
        ax_diff.scatter(x, c["diffs"], color=COLORS[arm], zorder=3, s=12)
        ax_diff.errorbar([j], [c["diff_mean"]], yerr=_yerr(c["diff_mean"], c["ci95"]), color="black", capsize=6)
    ax_diff.set_xticks(range(len(others)), [ARM_TITLES[a].split(",")[0] for a in others], fontsize=8)
    ax_diff.set(ylabel=f"arm − baseline, {key}", title="Paired by seed (mean, 95% CI)")
    save_figure(fig, out / "accuracy.png")


def _plot_fidelity(report: dict[str, Any], names: list[str], out: Path) -> None:
    """Hallucination fidelity, with the mean-feature predictor as the floor."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for j, metric in enumerate(("cosine", "r2")):
        for i, arm in enumerate(names):
            s = report[arm].get(f"fidelity_{metric}")
            if s:
                ax.bar(j * 5 + i, s["mean"], yerr=s["std"], color=COLORS[arm], capsize=5, label=arm if j == 0 else None)
        floor = report["baseline"].get(f"mean_feature_{metric}")
        if floor:
            ax.bar(j * 5 + len(names), floor["mean"], color="tab:brown", label="mean feature" if j == 0 else None)
    ax.set_xticks([1, 6], ["cosine", "R² (vs train mean)"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(ylabel="hallucinated vs teacher features", title="Hallucination fidelity")
    ax.legend()
    save_figure(fig, out / "fidelity.png")


def _plot_curves(report: dict[str, Any], arms: dict[str, dict[int, dict]], names: list[str], out: Path) -> None:
    """Validation curves: mean over seeds with a band of one standard deviation, per arm."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for arm in names:
        curves = {}
        for run in arms[arm].values():
            for r in run["log"]:
                value = r.get("eval_top1") or r.get("eval_spearman")
                if value:
                    curves.setdefault(int(r["epoch"]), []).append(float(value))
        if curves:
            x = sorted(curves)
            mean = np.array([statistics.fmean(curves[e]) for e in x])
            std = np.array([statistics.pstdev(curves[e]) for e in x])
            ax.plot(x, mean, color=COLORS[arm], label=ARM_TITLES[arm])
            ax.fill_between(x, mean - std, mean + std, color=COLORS[arm], alpha=0.2)
    curves_split = "/".join(report["protocol"]["curves_split"])
    ax.set(xlabel="epoch", ylabel=f"{curves_split} clip top-1 (or Spearman)", title="Curves: mean ± std over seeds")
    ax.legend()
    save_figure(fig, out / "curves.png")


def _plot_cost(report: dict[str, Any], out: Path) -> None:
    """Per-prediction cost: student (one frame) vs teacher (one clip), values written on the bars."""
    t = report["teacher"]
    s = report["baseline"]
    if "cost_gflops" in s and t.get("cost_gflops"):
        fig = Figure(figsize=(3.5, 3.5))
        ax = fig.subplots()
        values = [s["cost_gflops"]["mean"], t["cost_gflops"]]
        bars = ax.bar([0, 1], values, color=[COLORS["hallucinet"], COLORS["teacher"]])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values])
        ax.set_xticks([0, 1], ["student\n(1 frame)", "teacher\n(1 clip)"])
        ax.set(ylabel="GFLOPs", title="Per-prediction cost")
        ax.margins(y=0.15)
        save_figure(fig, out / "cost.png")


def _yerr(mean: float, ci: list[float]) -> list[list[float]] | None:
    """Matplotlib's asymmetric error bar for a ``[low, high]`` interval (none when it is undefined)."""
    if ci is None or math.isnan(ci[0]):
        return None
    return [[mean - ci[0]], [ci[1] - mean]]

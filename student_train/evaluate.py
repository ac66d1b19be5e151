"""Evaluate a student on a split of the cache: task metrics, hallucination fidelity, the teacher's own accuracy.

Everything comes from the cache: the stored frames (centre-cropped as in training), the
teacher's cached features (fidelity) and cached logits (teacher accuracy, when the teacher's
classes are the dataset's). Video-level figures average a video's anchors.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.cache import FeatureCache
from pipeline.device import autocast, resolve_device, resolve_precision
from pipeline.errors import UserError
from pipeline.metric_schema import HEADLINE
from student_train import metrics as M
from student_train import plots
from student_train.data import make_loader
from student_train.losses import LOSSES
from student_train.models import HalluciNet
from student_train.presets import FramePreset
from student_train.spec import StudentSpec, load_student

logger = logging.getLogger(__name__)


@torch.inference_mode()
def run_model(
    model: HalluciNet,
    cache: FeatureCache,
    rows: np.ndarray,
    preset: FramePreset,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Task outputs ``(N, C)`` and hallucinated features ``(N, D)`` for clip ``rows`` (centre crop, no mirror)."""
    model.eval()
    outputs, hallucinated = [], []
    loader = make_loader(cache, rows, preset, batch_size=batch_size, train=False, seed=0, workers=workers)
    for batch in loader:
        images = preset.apply(batch.images.to(device), batch.views)
        with autocast(device, precision):
            out, h = model(images)
        outputs.append(out.float().cpu().numpy())
        hallucinated.append(h.float().cpu().numpy())
    if not outputs:
        return np.zeros((0, model.task_head.out_features if model.task_head else 0)), np.zeros((0, 0))
    return np.concatenate(outputs), np.concatenate(hallucinated)


def compute_metrics(
    cache: FeatureCache, rows: np.ndarray, outputs: np.ndarray, hallucinated: np.ndarray, spec: StudentSpec
) -> dict[str, Any]:
    """All metrics of one split from the model's outputs on its clip ``rows``."""
    video = cache.clip_video[rows]
    result: dict[str, Any] = {"task": spec.task, "num_clips": len(rows), "num_videos": len(np.unique(video))}
    if spec.task == "classification":
        labels = cache.clip_label[rows]
        probs = M.softmax(outputs)
        ids, video_probs = M.video_mean(probs, video)
        video_labels = cache.videos.label[ids]
        confusion = M.confusion_matrix(video_probs.argmax(1), video_labels, len(spec.classes))
        result.update(
            clip_top1=M.topk_accuracy(outputs, labels, 1),
            clip_top5=M.topk_accuracy(outputs, labels, 5),
            video_top1=M.topk_accuracy(video_probs, video_labels, 1),
            video_top5=M.topk_accuracy(video_probs, video_labels, 5),
            chance=1 / len(spec.classes),
            per_class={name: _num(a) for name, a in zip(spec.classes, M.per_class_accuracy(confusion), strict=True)},
            confusion=confusion.tolist(),
        )
    elif spec.task == "regression":
        pred = outputs[:, 0] * spec.score_std + spec.score_mean
        ids, video_pred = M.video_mean(pred, video)
        truth = cache.videos.score[ids]
        result.update(
            spearman=M.spearman(video_pred, truth),
            pearson=M.pearson(video_pred, truth),
            mae=M.mean_absolute_error(video_pred, truth),
            clip_spearman=M.spearman(pred, cache.clip_score[rows]),
        )
    mean, std = spec.stats()
    teacher_space = LOSSES.get(spec.loss)().to_teacher_space(torch.from_numpy(hallucinated), mean, std).numpy()
    targets = cache.features(rows)
    reference = np.asarray(spec.feature_mean) if spec.feature_mean else None
    fid = M.fidelity(teacher_space, targets, reference)
    # The predictor that always outputs the train-set mean: the floor a student must clear to
    # predict anything beyond the average (its R² is 0 by construction; its cosine is not).
    floor = M.fidelity(np.broadcast_to(reference, targets.shape), targets, reference) if reference is not None else {}
    result.update(fidelity_cosine=fid["cosine"], fidelity_r2=fid["r2"])
    if floor:
        result.update(mean_feature_cosine=floor["cosine"], mean_feature_r2=floor["r2"])
    result.update(_teacher_accuracy(cache, rows, spec))
    return {k: _num(v) if isinstance(v, float) else v for k, v in result.items()}


def _teacher_accuracy(cache: FeatureCache, rows: np.ndarray, spec: StudentSpec) -> dict[str, float]:
    """The teacher's own accuracy from its cached logits, when they are over the dataset's classes."""
    if spec.task != "classification" or not cache.has_logits or tuple(cache.info.teacher_classes) != spec.classes:
        return {}
    logits = cache.logits(rows)
    ids, video_probs = M.video_mean(M.softmax(logits), cache.clip_video[rows])
    return {
        "teacher_clip_top1": M.topk_accuracy(logits, cache.clip_label[rows], 1),
        "teacher_video_top1": M.topk_accuracy(video_probs, cache.videos.label[ids], 1),
    }


def _num(x: float) -> float | None:
    """JSON has no NaN: a metric that does not exist (empty class, constant target) becomes null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def write_metrics(metrics: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def per_class_records(per_class: dict[str, float | None], confusion: list[list[int]] | None) -> list[dict[str, Any]]:
    """``[{"class", "accuracy", "videos"}]`` in label order: the rows of ``per_class.json``.

    A list of records is what ``dvc plots`` reads (dvc.yaml draws it as horizontal bars, one per
    class, the experiments side by side); ``videos`` is the class's count of evaluated videos.
    """
    counts = np.asarray(confusion).sum(axis=1).tolist() if confusion is not None else [None] * len(per_class)
    return [
        {"class": name, "accuracy": accuracy, "videos": n}
        for (name, accuracy), n in zip(per_class.items(), counts, strict=True)
    ]


def write_outputs(
    metrics: dict[str, Any],
    spec: StudentSpec,
    out: Path,
    *,
    history: list[dict[str, Any]] | None = None,
    title: str = "video-level",
) -> None:
    """``metrics.json``, ``per_class.json`` and the plots under ``out``.

    ``metrics.json`` is flat, one figure per key, so ``dvc metrics`` and ``dvc exp show`` list a
    column per figure, not one per class (101 on UCF101): the per-class accuracies go to
    ``per_class.json`` beside it, and the bulky confusion matrix becomes ``plots/confusion.png``.
    """
    flat = {k: v for k, v in metrics.items() if k not in ("per_class", "confusion")}
    assert not any(isinstance(v, dict | list) for v in flat.values()), "metrics.json must stay flat"
    write_metrics(flat, out / "metrics.json")
    confusion = metrics.get("confusion")
    # Written for every task (an empty list without classes): dvc.yaml declares it as an output.
    records = per_class_records(metrics["per_class"], confusion) if "per_class" in metrics else []
    (out / "per_class.json").write_text(json.dumps(records, indent=2) + "\n")
    if history:
        plots.training_curves(history, out / "plots" / "curves.png", title=f"{spec.student}, {out.name}")
    if confusion is not None:
        plots.confusion(np.array(confusion), spec.classes, out / "plots" / "confusion.png", title=title)


def summary_line(metrics: dict[str, Any]) -> str:
    """One log line with the headline figures."""
    keys = (*HEADLINE.values(), "clip_top1", "mae", "fidelity_cosine", "fidelity_r2", "teacher_video_top1")
    parts = [f"{k} {metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), float)]
    return ", ".join(parts)


def check_compatible(ckpt: dict[str, Any], spec: StudentSpec, cache: FeatureCache, *, other_teacher: bool) -> None:
    """Refuse a cache the student cannot be scored on, and one made by another teacher unless asked.

    A cache of another teacher (or another preprocessing of the same one: the config key differs)
    has other target features: hallucination fidelity against them means nothing (an R² of
    -13,000 looks like a broken student). ``other_teacher`` turns that refusal into a warning,
    for deliberate cross-teacher evaluations.
    """
    path = cache.path
    if spec.task != "none" and cache.info.task != spec.task:
        raise UserError(f"{path} holds a {cache.info.task} dataset; the student was trained for {spec.task}")
    if spec.task == "classification" and tuple(cache.info.classes) != spec.classes:
        raise UserError(f"{path} has other classes than the student was trained on")
    if cache.info.feature_dim != spec.teacher_dim:
        raise UserError(
            f"{path} holds {cache.info.feature_dim}-d teacher features; "
            f"the student hallucinates {spec.teacher_dim}-d ones"
        )
    trained = ckpt.get("cache") or {}
    mine = (trained.get("teacher"), trained.get("teacher_weights"), trained.get("config_key"))
    theirs = (cache.info.teacher, cache.info.teacher_weights, cache.info.config_key)
    if trained and mine != theirs:
        message = (
            f"{path} was made by teacher {theirs[0]} ({theirs[1]}, config {theirs[2][:12]}), but the student "
            f"learnt from {mine[0]} ({mine[1]}, config {str(mine[2])[:12]}): its fidelity figures would compare "
            "it with features it never saw"
        )
        if not other_teacher:
            raise UserError(message + "; pass --other-teacher to evaluate anyway")
        logger.warning("%s", message)


def evaluate_checkpoint(
    checkpoint: str | Path,
    cache_path: str | Path,
    *,
    split: str = "test",
    out: str | Path | None = None,
    batch_size: int = 64,
    device: str = "auto",
    other_teacher: bool = False,
) -> dict[str, Any]:
    """``evaluate-student``: metrics of a trained student on a split of a cache (same teacher and classes).

    Writes ``metrics.json``, ``per_class.json`` and ``plots/confusion.png`` under ``out`` when given.
    """
    model, spec, ckpt = load_student(checkpoint)
    cache = FeatureCache(cache_path)
    check_compatible(ckpt, spec, cache, other_teacher=other_teacher)
    rows = cache.clip_indices(split)
    if not len(rows):
        raise UserError(f"{cache_path} has no clips in split {split!r}")
    dev = resolve_device(device)
    model.to(dev)
    outputs, hallucinated = run_model(
        model,
        cache,
        rows,
        spec.preset(),
        batch_size=batch_size,
        device=dev,
        precision=resolve_precision("auto", dev),
    )
    metrics = {
        "split": split,
        "checkpoint": str(checkpoint),
        **compute_metrics(cache, rows, outputs, hallucinated, spec),
    }
    logger.info("%s split: %s", split, summary_line(metrics))
    if out is not None:
        write_outputs(metrics, spec, Path(out), title=f"{split}, video-level")
    return metrics

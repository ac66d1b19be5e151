"""Evaluate a student on a split of the cache: task metrics, hallucination fidelity, the teacher's own accuracy.

Everything comes from the cache: the stored frames (centre-cropped as in training), the
teacher's cached features (fidelity) and cached logits (teacher accuracy, when the teacher's
classes are the dataset's). Video-level figures average a video's anchors.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.cache import FeatureCache
from pipeline.device import autocast, resolve_device, resolve_precision
from student_train import metrics as M
from student_train import plots
from student_train.data import make_loader
from student_train.losses import to_teacher_space
from student_train.models import HalluciNet, build_student

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentSpec:
    """What a checkpoint must carry to rebuild and use its student without the cache.

    ``score_mean``/``score_std`` undo the standardising of regression targets;
    ``feature_mean``/``feature_std`` are the cache's statistics (the ``mse`` loss works in
    that standardised space).
    """

    student: str
    task: str
    loss: str
    num_outputs: int
    teacher_dim: int
    relu: bool
    classes: tuple[str, ...]
    image_size: int
    crop_size: int
    score_mean: float = 0.0
    score_std: float = 1.0
    feature_mean: tuple[float, ...] = ()
    feature_std: tuple[float, ...] = ()

    def stats(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.feature_mean:
            return None, None
        return torch.tensor(self.feature_mean), torch.tensor(self.feature_std)


@torch.inference_mode()
def run_model(
    model: HalluciNet,
    cache: FeatureCache,
    rows: np.ndarray,
    *,
    crop: int,
    batch_size: int,
    device: torch.device,
    precision: str,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Task outputs ``(N, C)`` and hallucinated features ``(N, D)`` for clip ``rows`` (centre crop, no flip)."""
    model.eval()
    outputs, hallucinated = [], []
    loader = make_loader(cache, rows, batch_size=batch_size, crop=crop, train=False, seed=0, workers=workers)
    for batch in loader:
        with autocast(device, precision):
            out, h = model(batch.images.to(device))
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
        video_labels = cache.videos["label"][ids]
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
        truth = cache.videos["score"][ids]
        result.update(
            spearman=M.spearman(video_pred, truth),
            pearson=M.pearson(video_pred, truth),
            mae=M.mean_absolute_error(video_pred, truth),
            clip_spearman=M.spearman(pred, cache.clip_score[rows]),
        )
    mean, std = spec.stats()
    teacher_space = to_teacher_space(torch.from_numpy(hallucinated), spec.loss, mean, std).numpy()
    fid = M.fidelity(teacher_space, cache.features(rows))
    result.update(fidelity_cosine=fid["cosine"], fidelity_r2=fid["r2"])
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
        "teacher_video_top1": M.topk_accuracy(video_probs, cache.videos["label"][ids], 1),
    }


def _num(x: float) -> float | None:
    """JSON has no NaN: a metric that does not exist (empty class, constant target) becomes null."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def write_metrics(metrics: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def write_outputs(
    metrics: dict[str, Any],
    spec: StudentSpec,
    out: Path,
    *,
    history: list[dict[str, Any]] | None = None,
    title: str = "video-level",
) -> None:
    """``metrics.json`` (without the bulky confusion matrix, which becomes a PNG) and the plots."""
    confusion = metrics.pop("confusion", None)
    write_metrics(metrics, out / "metrics.json")
    if history:
        plots.training_curves(history, out / "plots" / "curves.png", title=f"{spec.student}, {out.name}")
    if confusion is not None:
        plots.confusion(np.array(confusion), spec.classes, out / "plots" / "confusion.png", title=title)


def summary_line(metrics: dict[str, Any]) -> str:
    """One log line with the headline figures."""
    keys = ("video_top1", "clip_top1", "spearman", "mae", "fidelity_cosine", "fidelity_r2", "teacher_video_top1")
    parts = [f"{k} {metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), float)]
    return ", ".join(parts)


def load_student(path: str | Path) -> tuple[HalluciNet, StudentSpec, dict[str, Any]]:
    """A trained student from its checkpoint, in eval mode on the CPU, with its spec and the checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "spec" not in ckpt:
        raise ValueError(f"{path} is not a train-student checkpoint")
    spec_values = dict(ckpt["spec"])
    for key in ("classes", "feature_mean", "feature_std"):
        spec_values[key] = tuple(spec_values[key])
    spec = StudentSpec(**spec_values)
    model = build_student(spec.student, num_outputs=spec.num_outputs, teacher_dim=spec.teacher_dim, relu=spec.relu)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), spec, ckpt


def evaluate_checkpoint(
    checkpoint: str | Path,
    cache_path: str | Path,
    *,
    split: str = "test",
    out: str | Path | None = None,
    batch_size: int = 64,
    device: str = "auto",
) -> dict[str, Any]:
    """``evaluate-student``: metrics of a trained student on a split of a cache (same teacher and classes).

    Writes ``metrics.json`` (and ``plots/confusion.png``) under ``out`` when given.
    """
    model, spec, _ = load_student(checkpoint)
    cache = FeatureCache(cache_path)
    if spec.task != "none" and cache.info.task != spec.task:
        raise ValueError(f"{cache_path} holds a {cache.info.task} dataset; the student was trained for {spec.task}")
    if spec.task == "classification" and tuple(cache.info.classes) != spec.classes:
        raise ValueError(f"{cache_path} has other classes than the student was trained on")
    if cache.info.feature_dim != spec.teacher_dim:
        raise ValueError(
            f"{cache_path} holds {cache.info.feature_dim}-d teacher features; "
            f"the student hallucinates {spec.teacher_dim}-d ones"
        )
    rows = cache.clip_indices(split)
    if not len(rows):
        raise ValueError(f"{cache_path} has no clips in split {split!r}")
    dev = resolve_device(device)
    model.to(dev)
    outputs, hallucinated = run_model(
        model,
        cache,
        rows,
        crop=spec.crop_size,
        batch_size=batch_size,
        device=dev,
        precision=resolve_precision("auto", dev, cpu_bf16=False),
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

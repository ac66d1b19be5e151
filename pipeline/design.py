"""``check-benchmark``: the synthetic benchmark's design checks, from the teacher's cache alone (no student).

A benchmark can show what hallucination does only if the teacher's features hold something a
single frame can learn *beyond the label* (here: how fast the object moves, which a frame shows
through its ghost's length, and which way its pose cue points). This command measures that,
and the teacher's accuracy on the students' task, before any student is trained:

* ``teacher_beyond_label_r2``: on the train clips, the share of the teacher-feature variance
  explained by ``class x (speed, cue)`` (least squares on one-hot cells) minus the share the
  class alone explains. Zero means the hallucination target is a re-encoding of the label.
* ``teacher_video_top1`` per split: the teacher's own top-1 per video from its cached logits.
  A teacher fitted on the pool's finer labels (``MoveLeftSpeed2``) is scored on the students'
  classes by adding up the probabilities of the fine classes of each class.
* the achievable single-frame ceilings (``ceiling.json``) and the scene shortcut's rate in the
  training videos (``videos.csv``), both written by make-synthetic.

Reads the cache, ``videos.csv`` and ``ceiling.json``; writes ``design.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cache import FeatureCache
from pipeline.config import option
from pipeline.errors import UserError

logger = logging.getLogger(__name__)

_FINE = re.compile(r"^(?P<coarse>.+?)Speed\d+$")


@dataclass(frozen=True)
class DesignConfig:
    """``check-benchmark`` settings; params.yaml section ``check_benchmark``."""

    cache: str = option("data/features.h5", "The students' feature cache (extract-teacher).", path="file")
    videos: str = option("data/synthetic/videos.csv", "make-synthetic's videos.csv (what each video drew).", path="any")
    ceiling: str = option("data/synthetic/ceiling.json", "make-synthetic's ceiling.json.", path="any")
    out: str = option("metrics/design.json", "Where to write the checks (JSON).", path="file")


def explained_variance(targets: np.ndarray, cells: np.ndarray) -> float:
    """R^2 of ``targets`` ``(N, D)`` fitted by the mean of each cell (``cells``: ``(N,)`` ints), one-hot LSQ."""
    targets = targets.astype(np.float64)
    total = ((targets - targets.mean(0)) ** 2).sum()
    if total == 0:
        return float("nan")
    _, inverse = np.unique(cells, return_inverse=True)
    means = np.zeros((inverse.max() + 1, targets.shape[1]))
    np.add.at(means, inverse, targets)
    means /= np.bincount(inverse)[:, None]
    return float(1 - ((targets - means[inverse]) ** 2).sum() / total)


def coarse_map(teacher_classes: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray | None:
    """``map[t]``: the students' class of teacher class ``t`` (itself, or ``<Class>Speed<k>`` -> ``<Class>``)."""
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for name in teacher_classes:
        match = _FINE.match(name)
        coarse = name if name in index else match.group("coarse") if match else None
        if coarse not in index:
            return None
        out.append(index[coarse])
    return np.array(out)


def teacher_top1(cache: FeatureCache, split: str) -> float | None:
    """The teacher's video top-1 on ``split`` over the students' classes, from its cached logits."""
    teacher_classes = tuple(cache.info.teacher_classes)
    mapping = coarse_map(teacher_classes, tuple(cache.info.classes)) if cache.has_logits else None
    rows = cache.clip_indices(split)
    if mapping is None or not len(rows):
        return None
    logits = cache.logits(rows).astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    coarse = np.zeros((len(rows), cache.num_classes))
    np.add.at(coarse.T, mapping, probs.T)
    videos, inverse = np.unique(cache.clip_video[rows], return_inverse=True)
    per_video = np.zeros((len(videos), cache.num_classes))
    np.add.at(per_video, inverse, coarse)
    return float((per_video.argmax(1) == cache.videos.label[videos]).mean())


def read_videos(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        raise UserError(f"{path} does not exist (make-synthetic writes it beside the videos)")
    with open(path, newline="") as fh:
        return {row["path"]: row for row in csv.DictReader(fh)}


def check_design(cfg: DesignConfig) -> dict[str, Any]:
    """Measure the design's properties, write them to ``cfg.out`` as JSON, log them, and return them."""
    cache = FeatureCache(cfg.cache, require_task="classification")
    videos = read_videos(Path(cfg.videos))
    rows = cache.clip_indices("train")
    paths = cache.videos.path[cache.clip_video[rows]]
    missing = [p for p in paths if p not in videos]
    if missing:
        raise UserError(f"{cfg.videos} does not describe {len(missing)} cached videos, e.g. {missing[0]}")
    label = cache.clip_label[rows]
    speeds = sorted({float(videos[p]["speed"]) for p in paths})
    speed = np.searchsorted(speeds, [float(videos[p]["speed"]) for p in paths])
    agrees = np.array([videos[p]["agrees"] == "1" for p in paths])
    features = cache.features(rows)
    r2_class = explained_variance(features, label)
    # What one frame can show besides the class: its speed (the ghost's length) and its cue.
    r2_frame = explained_variance(features, (label * len(speeds) + speed) * 2 + agrees)
    ceiling = json.loads(Path(cfg.ceiling).read_text()) if Path(cfg.ceiling).is_file() else {}
    train = [v for v in videos.values() if v["split"] == "train"]
    design = {
        "teacher": cache.info.teacher,
        "teacher_weights": cache.info.teacher_weights,
        "teacher_classes": len(cache.info.teacher_classes),
        "teacher_r2_class": r2_class,
        "teacher_r2_class_speed_cue": r2_frame,
        "teacher_beyond_label_r2": r2_frame - r2_class,
        "teacher_video_top1": {split: teacher_top1(cache, split) for split in ("train", "val", "test")},
        "single_frame_ceiling": {
            split: value["video_top1"] for split, value in (ceiling.get("achievable") or {}).items()
        },
        "scene_rate_train": float(np.mean([v["scene"] == "1" for v in train])) if train else 0.0,
        "speeds": speeds,
        "train_clips": len(rows),
    }
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(design, indent=2, sort_keys=True) + "\n")
    top1 = design["teacher_video_top1"]
    logger.info(
        "teacher features (train clips): the class explains R^2 %.3f, class x (speed, cue) %.3f: %.3f beyond the label",
        r2_class,
        r2_frame,
        design["teacher_beyond_label_r2"],
    )
    logger.info(
        "teacher video top-1 on the students' classes: %s",
        ", ".join(f"{s} {v:.3f}" for s, v in top1.items() if v is not None) or "no logits over these classes",
    )
    logger.info(
        "single-frame ceilings: %s; training videos in their class's scene: %.2f",
        ", ".join(f"{s} {v:.4f}" for s, v in design["single_frame_ceiling"].items()) or "none",
        design["scene_rate_train"],
    )
    return design

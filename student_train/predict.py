"""``predict``: run a trained student on video files, K frames each, no teacher and no cache.

Frames are prepared exactly as extraction stored them for training (short side resized to
the cache's image size, centre square) and then centre-cropped like evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.frames import student_images
from pipeline.video import decode, probe
from student_train.data import crop_flip, to_tensor
from student_train.evaluate import StudentSpec
from student_train.metrics import softmax
from student_train.models import HalluciNet

logger = logging.getLogger(__name__)


def frame_picks(num_frames: int, k: int) -> list[int]:
    """Centres of ``k`` equal segments of the video (fewer when it has fewer frames), sorted, unique."""
    if num_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got {num_frames} frames, k={k}")
    return sorted({int((i + 0.5) * num_frames / k) for i in range(k)})


@torch.inference_mode()
def predict_video(
    model: HalluciNet, spec: StudentSpec, path: str | Path, *, frames: int = 8, top_k: int = 5
) -> dict[str, Any]:
    """Predict one video from ``frames`` frames: averaged class probabilities (top ``top_k``) or the mean score."""
    info = probe(path)
    picks = frame_picks(info.num_frames, frames)
    video = decode(path, picks)
    images = crop_flip(student_images(video.frames, spec.image_size), spec.crop_size, None)
    outputs, _ = model(to_tensor(images))
    result: dict[str, Any] = {"video": str(path), "frames": list(video.indices)}
    if spec.task == "classification":
        probs = softmax(outputs.numpy().astype(np.float64)).mean(axis=0)
        order = np.argsort(-probs, kind="stable")[: min(top_k, len(probs))]
        result["top"] = [{"class": spec.classes[i], "probability": round(float(probs[i]), 6)} for i in order]
    elif spec.task == "regression":
        scores = outputs[:, 0].numpy() * spec.score_std + spec.score_mean
        result["score"] = round(float(scores.mean()), 6)
    else:
        raise ValueError("this student was trained on the hallucination task alone; it has no task head to predict")
    return result


def format_prediction(result: dict[str, Any]) -> str:
    """Human-readable lines for one video's prediction."""
    lines = [f"{result['video']} ({len(result['frames'])} frames)"]
    if "top" in result:
        lines += [f"  {p['probability']:7.2%}  {p['class']}" for p in result["top"]]
    else:
        lines.append(f"  score {result['score']:.4f}")
    return "\n".join(lines)

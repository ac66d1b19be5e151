"""``predict-student``: run a trained student on video files, K frames each, no teacher and no cache.

Frames are prepared exactly as extraction stored them for training (short side resized to
the cache's image size, centre square) and then centre-cropped like evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.clips import spread_frames
from pipeline.errors import UserError
from pipeline.frames import student_images
from pipeline.video import count_frames, decode
from student_train.metrics import softmax
from student_train.models import HalluciNet
from student_train.spec import StudentSpec

logger = logging.getLogger(__name__)


@torch.inference_mode()
def predict_video(
    model: HalluciNet, spec: StudentSpec, path: str | Path, *, frames: int = 8, top_k: int = 5
) -> dict[str, Any]:
    """Predict one video from ``frames`` frames: averaged class probabilities (top ``top_k``) or the mean score."""
    # Spread over the frames the stream holds, not over what the header claims.
    video = decode(path, spread_frames(count_frames(path), frames))
    images = torch.from_numpy(student_images(video.frames, spec.image_size))  # (K, S, S, 3) uint8
    outputs, _ = model(spec.preset().eval(images))
    result: dict[str, Any] = {"video": str(path), "frames": list(video.indices)}
    if spec.task == "classification":
        probs = softmax(outputs.numpy().astype(np.float64)).mean(axis=0)
        order = np.argsort(-probs, kind="stable")[: min(top_k, len(probs))]
        result["top"] = [{"class": spec.classes[i], "probability": round(float(probs[i]), 6)} for i in order]
    elif spec.task == "regression":
        scores = outputs[:, 0].numpy() * spec.score_std + spec.score_mean
        result["score"] = round(float(scores.mean()), 6)
    else:
        raise UserError("this student was trained on the hallucination task alone; it has no task head to predict")
    return result


def format_prediction(result: dict[str, Any]) -> str:
    """Human-readable lines for one video's prediction."""
    lines = [f"{result['video']} ({len(result['frames'])} frames)"]
    if "top" in result:
        lines += [f"  {p['probability']:7.2%}  {p['class']}" for p in result["top"]]
    else:
        lines.append(f"  score {result['score']:.4f}")
    return "\n".join(lines)

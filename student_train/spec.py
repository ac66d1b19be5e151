"""The student's checkpoint contract: what a trained student carries to be rebuilt and used without the cache.

Train writes it, and evaluate, predict and export read it; it lives alone here so that none of
them imports another's dependencies (export does not need matplotlib, predict does not need HDF5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoint import load_safely
from pipeline.errors import UserError
from student_train.models import HalluciNet, build_student
from student_train.presets import FramePreset


@dataclass(frozen=True)
class StudentSpec:
    """How to rebuild a student and prepare its input.

    ``image_size``/``crop_size`` fix the frame preset (:meth:`preset`); ``score_mean``/``score_std``
    undo the standardising of regression targets; ``feature_mean``/``feature_std`` are the
    cache's train statistics (the ``mse`` loss works in that standardised space, and fidelity's R²
    is measured against that mean).
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

    def preset(self) -> FramePreset:
        return FramePreset(crop_size=self.crop_size)

    def build(self) -> HalluciNet:
        """A fresh (randomly initialised) model of this spec."""
        return build_student(self.student, num_outputs=self.num_outputs, teacher_dim=self.teacher_dim, relu=self.relu)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudentSpec:
        values = dict(values)
        for key in ("classes", "feature_mean", "feature_std"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


def load_student(path: str | Path) -> tuple[HalluciNet, StudentSpec, dict[str, Any]]:
    """A trained student from its checkpoint, in eval mode on the CPU, with its spec and the checkpoint.

    Loaded with ``weights_only=True``: a checkpoint holds tensors and plain values only, so a
    crafted file cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"student checkpoint {path} does not exist")
    ckpt = load_safely(path)
    if not isinstance(ckpt, dict) or "spec" not in ckpt:
        raise UserError(f"{path} is not a train-student checkpoint")
    spec = StudentSpec.from_dict(ckpt["spec"])
    model = spec.build()
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), spec, ckpt

"""The student's view of a stored frame, defined once: train (random crop + mirror) and eval (centre crop).

Like torchvision's ``references/classification/presets.py``, one object says how a frame becomes
the model's input, and training, evaluation, ``predict`` and export all use it. Two parts:

* :meth:`FramePreset.views` draws, on the host, *where* each frame is cropped and whether it is
  mirrored (the loader needs the mirror decision to pick the matching teacher targets and label);
* :meth:`FramePreset.apply` cuts those views out of a uint8 batch in one gather, on whatever
  device the batch is on (the GPU, in training), and scales to [0, 1].

Normalisation (ImageNet mean and std) happens inside the model (:class:`student_train.models.HalluciNet`),
so an exported model takes [0, 1] RGB and cannot disagree with training about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import UserError


@dataclass(frozen=True)
class Views:
    """Where each frame of a batch is cropped, and whether it is mirrored: ``(B,)`` int64, int64, bool."""

    tops: np.ndarray
    lefts: np.ndarray
    mirrored: np.ndarray


@dataclass(frozen=True, kw_only=True)
class FramePreset:
    """A ``crop_size`` square of a stored ``(H, W, 3)`` uint8 frame.

    Attributes:
        crop_size: side of the square the model sees.
    """

    crop_size: int

    def views(self, b: int, h: int, w: int, rng: np.random.Generator | None, *, mirror: bool = True) -> Views:
        """``b`` random crops (and a fair coin for mirroring when ``mirror``) with ``rng``; centre crops without."""
        c = self.crop_size
        if c > min(h, w):
            raise UserError(f"crop size {c} is larger than the cached frames ({h}x{w})")
        if rng is None:
            return Views(np.full(b, (h - c) // 2), np.full(b, (w - c) // 2), np.zeros(b, bool))
        tops = rng.integers(0, h - c + 1, size=b)
        lefts = rng.integers(0, w - c + 1, size=b)
        mirrored = rng.random(b) < 0.5
        return Views(tops, lefts, mirrored & mirror)

    def apply(self, images: torch.Tensor, views: Views) -> torch.Tensor:
        """``(B, H, W, 3)`` uint8 -> ``(B, 3, crop, crop)`` float32 in [0, 1], cropped and mirrored per ``views``."""
        device, c, b = images.device, self.crop_size, images.shape[0]
        ar = torch.arange(c, device=device)
        tops = torch.as_tensor(views.tops, device=device)
        lefts = torch.as_tensor(views.lefts, device=device)
        mirrored = torch.as_tensor(views.mirrored, device=device)
        rows = tops[:, None] + ar  # (B, c)
        cols = lefts[:, None] + torch.where(mirrored[:, None], c - 1 - ar, ar)  # (B, c)
        batch = torch.arange(b, device=device)[:, None, None]
        out = images[batch, rows[:, :, None], cols[:, None, :]]  # (B, c, c, 3)
        return out.permute(0, 3, 1, 2).float().div_(255)

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        """Centre crops of ``(B, H, W, 3)`` uint8 frames, as evaluation and ``predict`` see them."""
        b, h, w, _ = images.shape
        return self.apply(images, self.views(b, h, w, None))

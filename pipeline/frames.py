"""The student's view of a frame, shared by extraction (which stores it) and prediction (which
must show the student exactly what training showed it)."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2.functional as F


def student_images(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop a ``size`` square.

    Args:
        frames: ``(N, H, W, 3)`` uint8 RGB.
        size: side of the stored square.

    Returns:
        ``(N, size, size, 3)`` uint8 RGB. Antialiased bilinear, so downscaling a 320x240 frame
        does not alias the fine texture the student would otherwise learn from.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    x = F.resize(x, [size], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    x = F.center_crop(x, [size, size])
    return x.permute(0, 2, 3, 1).contiguous().numpy()

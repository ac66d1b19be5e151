"""Shared fixtures: tiny real video files written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.video import write_video


def moving_square(num_frames: int = 24, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames: a bright square sliding right, plus a frame-number stripe.

    The top 8 rows hold the frame index as 8 black/white bits, so tests can tell frames apart
    after lossy coding (:func:`frame_index_of`).
    """
    rng = np.random.default_rng(seed)
    frames = np.full((num_frames, height, width, 3), 40, np.uint8)
    frames[..., 2] = rng.integers(30, 60)
    for t in range(num_frames):
        x = (t * 2) % (width - 8)
        frames[t, 12:20, x : x + 8] = (230, 200, 40)
        bit = width // 8
        for b in range(8):
            frames[t, :8, b * bit : (b + 1) * bit] = 255 if (t >> b) & 1 else 0
    return frames


def frame_index_of(image: np.ndarray) -> int:
    """Recover the frame index :func:`moving_square` encoded in the top stripe."""
    bit = image.shape[1] // 8
    return sum(1 << b for b in range(8) if image[2:6, b * bit + 1 : (b + 1) * bit - 1].mean() > 128)


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A 24-frame 32x32 mpeg4 AVI."""
    return write_video(tmp_path / "clip.avi", moving_square(), fps=25)

"""Helpers shared by the benchmark scripts: synthetic test videos and a simple timer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.video import write_video


def make_clip(path: Path, num_frames: int = 150, height: int = 240, width: int = 320, seed: int = 0) -> Path:
    """A UCF101-sized clip (320x240 mpeg4 AVI by default) with moving textured content."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height, width * 2, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, -3 * t, axis=1)[:, :width] for t in range(num_frames)])
    return write_video(path, frames, fps=25)


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest wall time of ``repeats`` calls (the least disturbed by other work)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)

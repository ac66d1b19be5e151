"""Bytes per clip of a feature cache, for every registry teacher and a few stored frame sizes.

Measured, not estimated: for each (teacher, ``image_size``, mirror) a real cache of
``--videos`` x ``--clips`` clips (default 1,600: a whole number of the 64-row HDF5 chunks, so
no padding shows) is written by :func:`pipeline.cache.write_cache` (random frames
and features of the teacher's width, its 400 Kinetics logits) and its file size divided by its
clip count; :func:`pipeline.cache.cache_bytes` (the figure extract-teacher checks free space
against) is printed beside it. Multiply by clips per video x videos for a dataset: UCF101 with
8 anchors per video is 13,320 x 8 = 106,560 clips.

Run: ``python -m benchmarks.cache_cost`` (a few seconds; prints a Markdown table).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pipeline.cache import CacheInfo, VideoEntry, cache_bytes, write_cache
from teacher_extract.models import TEACHERS

IMAGE_SIZES = (112, 128, 160, 224)
LOGITS = 400


def entries(videos: int, clips: int, dim: int, size: int, mirror: bool, rng: np.random.Generator):
    for v in range(videos):
        features = rng.normal(size=(clips, dim)).astype(np.float32)
        logits = rng.normal(size=(clips, LOGITS)).astype(np.float32)
        yield VideoEntry(
            path=f"class/v{v}.avi",
            label=0,
            score=float("nan"),
            split="train",
            num_frames=clips * 16,
            fps=25.0,
            fingerprint=f"fp{v}",
            status="ok",
            frames=np.arange(clips, dtype=np.int64) * 16,
            features=features,
            images=rng.integers(0, 256, size=(clips, size, size, 3), dtype=np.uint8),
            logits=logits,
            features_mirror=features + 1 if mirror else None,
            logits_mirror=logits + 1 if mirror else None,
        )


def measure(teacher: str, dim: int, size: int, mirror: bool, videos: int, clips: int, folder: Path) -> float:
    """File bytes per clip of a real cache of ``videos`` x ``clips`` clips."""
    info = CacheInfo(
        dataset="ucf101",
        dataset_root="",
        split="1",
        task="classification",
        classes=("class",),
        teacher=teacher,
        teacher_weights="",
        feature_dim=dim,
        clip_len=16,
        frame_step=1,
        anchors=f"uniform:{clips}",
        image_size=size,
    )
    path = folder / f"{teacher}-{size}-{int(mirror)}.h5"
    rng = np.random.default_rng(0)
    n = videos * clips
    write_cache(
        path,
        info,
        entries(videos, clips, dim, size, mirror, rng),
        num_clips=n,
        image_shape=(size, size, 3),
        num_logits=LOGITS,
        mirror=mirror,
    )
    size = path.stat().st_size
    path.unlink()
    return size / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200, help="videos per measured cache")
    parser.add_argument("--clips", type=int, default=8, help="clips (anchors) per video")
    args = parser.parse_args()
    print("| teacher | features | image_size | mirror | KB per clip (file) | KB per clip (cache_bytes) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in TEACHERS.names():
            dim = TEACHERS.get(name)().feature_dim
            for size in IMAGE_SIZES:
                for mirror in (False, True):
                    per_clip = measure(name, dim, size, mirror, args.videos, args.clips, Path(tmp))
                    formula = cache_bytes(1, dim, (size, size, 3), LOGITS, mirror)
                    print(
                        f"| {name} | {dim} | {size} | {'yes' if mirror else 'no'} "
                        f"| {per_clip / 1024:.1f} | {formula / 1024:.1f} |"
                    )


if __name__ == "__main__":
    main()

"""Cost of re-extracting after adding 1 video to N, against extracting all N + 1, measured in one run.

- ``incremental_s``: wall time of ``run_extraction`` on the N + 1 videos when a cache of the
  first N exists (N copied from it, 1 extracted);
- ``full_s``: wall time of ``run_extraction`` of all N + 1 into a new cache;
- ``full_vs_incremental`` = full_s / incremental_s.

Both include the fixed costs of a run (building the teacher, fingerprinting every file,
writing the HDF5), which is what a user waits for; ``auto``'s precision probe is done by the
first (untimed) run and remembered.

Run: ``python -m benchmarks.incremental [--videos 24] [--teacher r3d_18] [--workers N]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.common import fresh_run_config, make_clip
from pipeline.synthetic import SyntheticConfig, generate
from teacher_extract.extract import ExtractConfig, run_extraction


def measure(
    videos: int = 24,
    teacher: str = "r3d_18",
    device: str = "auto",
    *,
    workers: int | None = None,
    batch_size: int = 8,
    fresh: bool = True,
) -> dict:
    """``fresh``: measure ``auto`` in a private folder (off when the caller already set one up)."""
    with tempfile.TemporaryDirectory() as tmp, fresh_run_config() if fresh else contextlib.nullcontext():
        root = generate(
            SyntheticConfig(
                out=f"{tmp}/data",
                classes=2,
                videos_per_class=videos // 2,
                groups=2,
                frames=48,
                height=240,
                width=320,
                workers=max(1, workers or 2),
            )
        )
        cfg = ExtractConfig(
            root=str(root),
            teacher=teacher,
            teacher_weights=None,
            anchors="uniform:2",
            batch_size=batch_size,
            device=device,
            workers=workers,
            out=f"{tmp}/f.h5",
        )
        run_extraction(cfg)  # N videos
        # One more train video, listed like the others.
        classes = (root / "ucfTrainTestlist/classInd.txt").read_text().split()[1::2]
        name = f"{classes[0]}/v_{classes[0]}_g01_c99.avi"
        make_clip(root / "UCF-101" / name, num_frames=48, seed=99)
        with open(root / "ucfTrainTestlist/trainlist01.txt", "ab") as fh:
            fh.write(f"{name} 1\r\n".encode())
        t0 = time.perf_counter()
        incremental = run_extraction(cfg)
        t_incremental = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = run_extraction(replace(cfg, out=f"{tmp}/full.h5"))
        t_full = time.perf_counter() - t0
        assert Path(cfg.out).is_file()
    return {
        "videos_before": videos,
        "incremental_extracted": incremental.extracted,
        "incremental_skipped": incremental.skipped,
        "incremental_s": t_incremental,
        "full_s": t_full,
        "full_extracted": full.extracted,
        "full_vs_incremental": t_full / t_incremental,
    }


def rows(i: dict) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, ratio, its two numbers)`` for :func:`benchmarks.suite.table`."""
    return [
        (
            "full vs incremental re-extraction",
            f"{i['full_vs_incremental']:.1f}x",
            f"{i['full_s']:.1f} s for {i['full_extracted']} videos vs {i['incremental_s']:.1f} s for "
            f"{i['incremental_extracted']} new (+{i['incremental_skipped']} skipped)",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="Decoder processes (default: every core).")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        json.dumps(
            measure(args.videos, args.teacher, args.device, workers=args.workers, batch_size=args.batch_size), indent=2
        )
    )


if __name__ == "__main__":
    main()

"""Cost of re-extracting after adding 1 video to N, against extracting all N + 1, measured in one run.

Run: ``python -m benchmarks.incremental [--videos 24] [--teacher r3d_18]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from benchmarks.common import make_clip
from pipeline.synthetic import SyntheticConfig, generate
from teacher_extract.extract import ExtractConfig, run_extraction


def measure(videos: int = 24, teacher: str = "r3d_18", device: str = "auto") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(
            SyntheticConfig(
                out=f"{tmp}/data", classes=2, videos_per_class=videos // 2, groups=2, frames=48, height=240, width=320
            )
        )
        cfg = ExtractConfig(
            root=str(root), teacher=teacher, teacher_weights=None, anchors="uniform:2", device=device, out=f"{tmp}/f.h5"
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
        full = run_extraction(ExtractConfig(**{**cfg.__dict__, "out": f"{tmp}/full.h5"}))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(args.videos, args.teacher, args.device), indent=2))


if __name__ == "__main__":
    main()

"""Extraction throughput vs the teacher's forward-only throughput, measured in one run.

The ratio says whether decoding, preprocessing and HDF5 writing keep up with the teacher:
1.0 means extraction costs nothing beyond the teacher's forward passes.

Run: ``python -m benchmarks.extract [--teacher r3d_18] [--videos 24] [--anchors uniform:2]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from pipeline.device import autocast, resolve_device, resolve_precision
from pipeline.synthetic import SyntheticConfig, generate
from teacher_extract.extract import ExtractConfig, run_extraction
from teacher_extract.models import build_teacher


def forward_only(cfg: ExtractConfig, batches: int) -> float:
    """Clips/s of the teacher alone on random tensors of the extraction's batch shape."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    teacher = build_teacher(cfg.teacher, None, seed=0).eval().to(device)
    fmt = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    teacher = teacher.to(memory_format=fmt)
    h, w = teacher.preset.crop_size
    x = torch.randn(cfg.batch_size, 3, cfg.clip_len, h, w, device=device).contiguous(memory_format=fmt)
    with torch.inference_mode(), autocast(device, precision):
        teacher(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(batches):
            teacher(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batches * cfg.batch_size / (time.perf_counter() - t0)


def measure(
    teacher: str = "r3d_18",
    videos: int = 24,
    anchors: str = "uniform:2",
    batch_size: int = 8,
    device: str = "auto",
    precision: str = "auto",
    workers: int = 2,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(
            SyntheticConfig(
                out=f"{tmp}/data", classes=2, videos_per_class=videos // 2, groups=2, frames=64, height=240, width=320
            )
        )
        cfg = ExtractConfig(
            dataset="ucf101",
            root=str(root),
            teacher=teacher,
            teacher_weights=None,
            anchors=anchors,
            batch_size=batch_size,
            device=device,
            precision=precision,
            workers=workers,
            out=f"{tmp}/f.h5",
        )
        t0 = time.perf_counter()
        summary = run_extraction(cfg)
        wall = time.perf_counter() - t0
        # At least 12 batches: a handful of timed batches swings by +-10% on a busy 2-core machine.
        batches = max(12, -(-summary.clips_extracted // batch_size))
        forward = forward_only(cfg, batches)
        size = Path(cfg.out).stat().st_size
    extract = summary.clips_extracted / wall
    return {
        "teacher": teacher,
        "device": str(resolve_device(device)),
        "precision": resolve_precision(precision, resolve_device(device)),
        "videos": summary.videos,
        "clips": summary.clips_extracted,
        "extract_clips_per_s": extract,
        "forward_only_clips_per_s": forward,
        "ratio": extract / forward,
        "cache_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--anchors", default="uniform:2")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--workers", type=int, default=2, help="Decoder threads.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = measure(
        args.teacher, args.videos, args.anchors, args.batch_size, args.device, args.precision, args.workers
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Training from the cache vs with the teacher online, loader vs step, student vs teacher cost.

All figures come from one run on the same batches:

- **cached step**: a HalluciNet training step (student forward + backward + Adam) whose
  hallucination targets are read from the cache;
- **online step**: the same step preceded by the teacher's forward pass on the batch's
  16-frame clips, as the reference code trained (decoding excluded, which flatters it);
- **loader**: batches/s of the cache loader alone (HDF5 read, crop, flip, to float);
- **cost**: per-prediction latency and GFLOPs of the student on one frame vs the teacher on one clip.

Run: ``python -m benchmarks.train [--student resnet18] [--teacher r3d_18] [--batch-size 16]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.cache import CacheInfo, FeatureCache, VideoEntry, write_cache
from pipeline.device import autocast, resolve_device, resolve_precision
from pipeline.profile import measure_cost
from student_train.data import make_loader
from student_train.losses import HalluciNetLoss
from student_train.models import build_student
from teacher_extract.models import build_teacher


def synthetic_cache(path: Path, clips: int, image_size: int, feature_dim: int, classes: int = 10) -> Path:
    """A cache of random frames and features: its content is irrelevant to speed, its shapes are not."""
    rng = np.random.default_rng(0)
    per_video = 8
    entries = [
        VideoEntry(
            path=f"v{v}.avi",
            label=v % classes,
            score=float("nan"),
            split="train",
            num_frames=64,
            fps=25.0,
            fingerprint=str(v),
            status="ok",
            frames=np.arange(per_video, dtype=np.int64) * 6,
            features=rng.random((per_video, feature_dim), dtype=np.float32),
            images=rng.integers(0, 255, (per_video, image_size, image_size, 3), dtype=np.uint8),
        )
        for v in range(clips // per_video)
    ]
    info = CacheInfo(
        dataset="bench",
        dataset_root="",
        split="1",
        task="classification",
        classes=tuple(f"c{i}" for i in range(classes)),
        teacher="r3d_18",
        teacher_weights="random:0",
        feature_dim=feature_dim,
        clip_len=16,
        frame_step=1,
        anchors=f"uniform:{per_video}",
        image_size=image_size,
    )
    n = per_video * len(entries)
    return write_cache(path, info, entries, num_clips=n, image_shape=(image_size, image_size, 3))


def timed(fn, repeats: int) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def measure(
    student: str = "resnet18",
    teacher: str = "r3d_18",
    batch_size: int = 16,
    steps: int = 3,
    image_size: int = 128,
    crop: int = 112,
    device: str = "auto",
) -> dict:
    dev = resolve_device(device)
    train_precision = resolve_precision("auto", dev, cpu_bf16=False)
    teacher_precision = resolve_precision("auto", dev)
    torch.manual_seed(0)
    t_model = build_teacher(teacher, None, seed=0).eval().to(dev)
    # channels_last, as train-student and extract-teacher use by default.
    s_model = build_student(student, num_outputs=10, teacher_dim=t_model.feature_dim)
    s_model = s_model.to(dev, memory_format=torch.channels_last)
    t_model = t_model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(s_model.parameters(), lr=1e-4)
    loss_fn = HalluciNetLoss("classification", "mse_sigmoid", 50.0)

    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(synthetic_cache(Path(tmp) / "f.h5", 256, image_size, t_model.feature_dim))
        rows = cache.clip_indices("train")
        batch = next(iter(make_loader(cache, rows, batch_size=batch_size, crop=crop, train=True, seed=0)))
        h, w = t_model.preset.crop_size
        clips = torch.rand(batch_size, 3, 16, h, w, device=dev).contiguous(memory_format=torch.channels_last_3d)
        images = batch.images.to(dev).contiguous(memory_format=torch.channels_last)
        labels = batch.labels.to(dev)

        def student_step(features: torch.Tensor) -> None:
            with autocast(dev, train_precision):
                out, hallucinated = s_model(images)
            loss = loss_fn(out, hallucinated, labels, features).total
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()

        def cached_step() -> None:
            student_step(batch.features.to(dev))

        def online_step() -> None:
            with torch.inference_mode(), autocast(dev, teacher_precision):
                features, _ = t_model(clips)
            student_step(features.float().clone())

        s_model.train()
        cached = timed(cached_step, steps * 3)
        online = timed(online_step, steps)

        def load_epoch(loader_rows: np.ndarray) -> float:
            loader = make_loader(cache, loader_rows, batch_size=batch_size, crop=crop, train=True, seed=1)
            t0 = time.perf_counter()
            n = sum(len(b.rows) for b in loader)
            return n / (time.perf_counter() - t0)

        from_disk = load_epoch(rows)
        cache.load_into_memory()
        in_memory = load_epoch(rows)

    student_cost = measure_cost(s_model.cpu().eval(), torch.rand(1, 3, crop, crop))
    teacher_cost = measure_cost(t_model.cpu(), torch.rand(1, 3, 16, h, w))
    step_rate = batch_size / cached
    return {
        "device": str(dev),
        "train_precision": train_precision,
        "teacher_precision": teacher_precision,
        "student": student,
        "teacher": teacher,
        "batch_size": batch_size,
        "cached_step_samples_per_s": step_rate,
        "online_step_samples_per_s": batch_size / online,
        "cached_vs_online": online / cached,
        "loader_hdf5_samples_per_s": from_disk,
        "loader_memory_samples_per_s": in_memory,
        "loader_hdf5_vs_step": from_disk / step_rate,
        "loader_memory_vs_step": in_memory / step_rate,
        "student_latency_ms": student_cost["latency_ms"],
        "teacher_latency_ms": teacher_cost["latency_ms"],
        "student_gflops": student_cost["gflops"],
        "teacher_gflops": teacher_cost["gflops"],
        "teacher_vs_student_latency": teacher_cost["latency_ms"] / student_cost["latency_ms"],
        "teacher_vs_student_gflops": teacher_cost["gflops"] / student_cost["gflops"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="Timed online steps (cached steps: 3x as many).")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.student, args.teacher, args.batch_size, args.steps, device=args.device)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

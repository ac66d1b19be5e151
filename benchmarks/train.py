"""Stage two's speed: loader, training step, prefetching, and training from the cache vs with the teacher online.

All figures come from one run on a synthetic cache (random frames and features of the real
shapes, mirrored targets included, so training mirrors as it does after ``extract-teacher
--mirror``), with the product's own code (``make_loader``, ``DevicePrefetcher``,
``Trainer.train_step``):

- **loader**: samples/s of ``make_loader`` alone (uint8 frames, crop corners and mirror
  decisions, features, labels), reading from HDF5 and from memory (``load_into_memory``).
- **resident step**: ``Trainer.train_step`` on a batch already on the device: crop and mirror
  on the device (``FramePreset.apply``), student forward + backward + Adam + schedule.
  ``crop`` is ``FramePreset.apply`` alone, for scale.
- **prefetched step**: whole epochs as ``train-student`` runs them (``DevicePrefetcher`` over
  ``make_loader`` over the in-memory cache, ``Trainer.train_step`` on each batch): wall time per
  step, and the time spent waiting for the next batch. ``prefetched_vs_resident`` near 1.0 and a
  small ``wait`` say the step never waits for data.
- **online step**: the same step preceded by the teacher's forward pass on the batch's 16-frame
  clips (in the teacher's fastest configuration), as the reference code trained; decoding and
  the teacher's preprocessing are left out, which flatters it. ``cached_vs_online`` = online
  step time / resident step time.
- **loader vs step**: loader samples/s over resident-step samples/s (how far ahead the loader is).
- **cost**: per-prediction latency (CPU, batch 1, median of 5) and GFLOPs of the student on one
  frame vs the teacher on one clip.

Run: ``python -m benchmarks.train [--student resnet18] [--teacher r3d_18] [--batch-size N] [--quick]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import describe_device, sync
from pipeline.autotune import RunConfig, fastest_config
from pipeline.cache import CacheInfo, FeatureCache, VideoEntry, write_cache
from pipeline.device import autocast, memory_format, resolve_device
from pipeline.profile import measure_cost
from student_train.data import DevicePrefetcher, make_loader
from student_train.train import TrainConfig, Trainer
from teacher_extract.models import build_teacher

PER_VIDEO = 8


def synthetic_cache(
    path: Path, clips: int, image_size: int, feature_dim: int, classes: int = 10, mirror: bool = True
) -> Path:
    """A cache of random frames and features: its content is irrelevant to speed, its shapes are not."""
    rng = np.random.default_rng(0)
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
            frames=np.arange(PER_VIDEO, dtype=np.int64) * 6,
            features=rng.random((PER_VIDEO, feature_dim), dtype=np.float32),
            images=rng.integers(0, 255, (PER_VIDEO, image_size, image_size, 3), dtype=np.uint8),
            features_mirror=rng.random((PER_VIDEO, feature_dim), dtype=np.float32) if mirror else None,
        )
        for v in range(clips // PER_VIDEO)
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
        anchors=f"uniform:{PER_VIDEO}",
        image_size=image_size,
    )
    n = PER_VIDEO * len(entries)
    return write_cache(path, info, entries, num_clips=n, image_shape=(image_size, image_size, 3), mirror=mirror)


def loader_rate(trainer: Trainer, cache: FeatureCache, epochs: int, workers: int) -> float:
    """Samples/s of ``make_loader`` over ``cache``'s train rows, batches discarded."""
    n, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        loader = make_loader(
            cache,
            trainer.train_rows,
            trainer.preset,
            batch_size=trainer.batch_size,
            train=True,
            seed=1,
            mirror=trainer.mirror,
            epoch=epoch,
            workers=workers,
            pin_memory=trainer.device.type == "cuda",
        )
        n += sum(len(b.rows) for b in loader)
    return n / (time.perf_counter() - t0)


def timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call, after two warm-up calls."""
    for _ in range(2):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def prefetched_epochs(trainer: Trainer, epochs: int, workers: int) -> dict:
    """Whole epochs as ``Trainer.train_epoch`` runs them: per-step wall time and time waiting for batches."""
    steps, wait = 0, 0.0
    sync(trainer.device)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        loader = make_loader(
            trainer.cache,
            trainer.train_rows,
            trainer.preset,
            batch_size=trainer.batch_size,
            train=True,
            seed=0,
            mirror=trainer.mirror,
            epoch=epoch,
            workers=workers,
            pin_memory=trainer.device.type == "cuda",
        )
        batches = iter(DevicePrefetcher(loader, trainer.device))
        while True:
            w0 = time.perf_counter()
            batch = next(batches, None)
            wait += time.perf_counter() - w0
            if batch is None:
                break
            trainer.train_step(batch)
            steps += 1
    sync(trainer.device)
    seconds = time.perf_counter() - t0
    return {"steps": steps, "step_s": seconds / steps, "wait_s_per_step": wait / steps, "wait_fraction": wait / seconds}


def teacher_config(teacher, example: torch.Tensor, device: torch.device, name: str, config: str) -> RunConfig:
    """``auto``: extract-teacher's own choice (remembered per machine); else ``<precision>+<format>``."""
    if config == "auto":
        return fastest_config(f"teacher:{name}", teacher, example, device)
    precision, fmt = config.split("+")
    return RunConfig(precision, fmt)


def measure(
    student: str = "resnet18",
    teacher: str = "r3d_18",
    *,
    batch_size: int | None = None,
    steps: int | None = None,
    clips: int | None = None,
    image_size: int = 128,
    crop: int = 112,
    workers: int = 0,
    teacher_run: str = "auto",
    device: str = "auto",
    quick: bool = False,
) -> dict:
    """Every figure of this module's docstring, measured in one run.

    Args:
        batch_size: default 32 on CUDA, 16 on a CPU.
        steps: timed online steps (resident steps: 3x as many); default 20 on CUDA, 2-3 on a CPU.
        clips: clips in the synthetic cache (an epoch); default 64 batches on CUDA, 8 on a CPU.
        workers: loader worker processes (``train-student --workers``; default 0, its default).
        teacher_run: the online teacher's ``<precision>+<format>``, or ``auto``.
    """
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    batch_size = batch_size or (32 if cuda else 16)
    steps = steps or (20 if cuda else (2 if quick else 3))
    clips = clips or batch_size * (64 if cuda else 8)
    torch.manual_seed(0)
    t_model = build_teacher(teacher, None, seed=0).eval().to(dev)
    h, w = t_model.preset.crop_size
    example = torch.randn(batch_size, 3, 16, h, w, generator=torch.Generator().manual_seed(0))
    t_run = teacher_config(t_model, example, dev, teacher, teacher_run)
    t_format = memory_format(t_run.memory_format, 5)
    t_model = t_model.to(memory_format=t_format)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        path = synthetic_cache(Path(tmp) / "f.h5", clips, image_size, t_model.feature_dim)
        cfg = TrainConfig(
            cache=str(path),
            out=f"{tmp}/run",
            student=student,
            batch_size=batch_size,
            crop_size=crop,
            workers=workers,
            in_memory="yes",
            device=str(dev),
        )
        trainer = Trainer(cfg)
        trainer.model.train()

        disk = FeatureCache(path)
        loader_epochs = 1 if quick else 2
        from_disk = loader_rate(trainer, disk, loader_epochs, workers)
        disk.load_into_memory()
        in_memory = loader_rate(trainer, disk, loader_epochs, workers)
        disk.close()

        first = make_loader(
            trainer.cache,
            trainer.train_rows,
            trainer.preset,
            batch_size=batch_size,
            train=True,
            seed=0,
            mirror=trainer.mirror,
        )
        batch = next(iter(first)).to(dev)
        crop_s = timed(lambda: trainer.preset.apply(batch.images, batch.views), steps * 3, dev)
        resident = timed(lambda: trainer.train_step(batch), steps * 3, dev)
        prefetched = prefetched_epochs(trainer, 1 if quick else 2, workers)

        clips_in = example.to(dev).contiguous(memory_format=t_format)

        def online_step() -> None:
            with torch.inference_mode(), autocast(dev, t_run.precision):
                features, _ = t_model(clips_in)
            trainer.train_step(dataclasses.replace(batch, features=features.float().clone()))

        online = timed(online_step, steps, dev)
        s_model = trainer.model
        student_cost = measure_cost(s_model.cpu().eval(), torch.rand(1, 3, crop, crop))
        teacher_cost = measure_cost(t_model.cpu(), torch.rand(1, 3, 16, h, w))
        mirror = trainer.mirror
        precision = trainer.precision

    step_rate = batch_size / resident
    return {
        "machine": describe_device(dev),
        "train_precision": precision,
        "teacher_config": f"{t_run.precision}+{t_run.memory_format}",
        "student": student,
        "teacher": teacher,
        "batch_size": batch_size,
        "crop": crop,
        "mirror": mirror,
        "loader_workers": workers,
        "clips": clips,
        "crop_ms": 1000 * crop_s,
        "resident_step_ms": 1000 * resident,
        "resident_step_samples_per_s": step_rate,
        "prefetched_step_ms": 1000 * prefetched["step_s"],
        "prefetched_wait_ms": 1000 * prefetched["wait_s_per_step"],
        "prefetched_wait_fraction": prefetched["wait_fraction"],
        "prefetched_steps": prefetched["steps"],
        "prefetched_vs_resident": prefetched["step_s"] / resident,
        "online_step_ms": 1000 * online,
        "online_step_samples_per_s": batch_size / online,
        "cached_vs_online": online / resident,
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


def rows(t: dict) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, ratio, its two numbers)`` for :func:`benchmarks.suite.table`."""
    step = t["resident_step_samples_per_s"]
    return [
        (
            "cached vs online-teacher training",
            f"{t['cached_vs_online']:.1f}x",
            f"{step:.1f} vs {t['online_step_samples_per_s']:.2f} samples/s ({t['student']} + {t['teacher']} "
            f"{t['teacher_config']}, batch {t['batch_size']}, student {t['train_precision']})",
        ),
        (
            "prefetched vs resident-batch step",
            f"{t['prefetched_vs_resident']:.3f}",
            f"{t['prefetched_step_ms']:.2f} vs {t['resident_step_ms']:.2f} ms per step; waiting for data "
            f"{t['prefetched_wait_ms']:.2f} ms per step ({100 * t['prefetched_wait_fraction']:.1f}%)",
        ),
        (
            "loader (HDF5) vs training step",
            f"{t['loader_hdf5_vs_step']:.1f}x",
            f"{t['loader_hdf5_samples_per_s']:.0f} vs {step:.1f} samples/s ({t['loader_workers']} loader workers)",
        ),
        (
            "loader (in memory) vs training step",
            f"{t['loader_memory_vs_step']:.1f}x",
            f"{t['loader_memory_samples_per_s']:.0f} vs {step:.1f} samples/s",
        ),
        (
            "device crop+mirror vs training step",
            f"{t['crop_ms'] / t['resident_step_ms']:.3f}",
            f"{t['crop_ms']:.2f} vs {t['resident_step_ms']:.2f} ms per batch (FramePreset.apply)",
        ),
        (
            "teacher vs student latency (CPU)",
            f"{t['teacher_vs_student_latency']:.1f}x",
            f"{t['teacher_latency_ms']:.1f} ms per clip vs {t['student_latency_ms']:.1f} ms per frame",
        ),
        (
            "teacher vs student GFLOPs",
            f"{t['teacher_vs_student_gflops']:.1f}x",
            f"{t['teacher_gflops']:.2f} vs {t['student_gflops']:.2f} GFLOPs",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="r3d_18")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="Timed online steps (resident steps: 3x as many).")
    parser.add_argument("--clips", type=int, default=None, help="Clips in the synthetic cache (one epoch).")
    parser.add_argument("--workers", type=int, default=0, help="Loader worker processes.")
    parser.add_argument("--teacher-config", default="auto", help="Online teacher's <precision>+<format>, or auto.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process.")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(
        args.student,
        args.teacher,
        batch_size=args.batch_size,
        steps=args.steps,
        clips=args.clips,
        workers=args.workers,
        teacher_run=args.teacher_config,
        device=args.device,
        quick=args.quick,
    )
    print(json.dumps(result, indent=2))
    for name, ratio, numbers in rows(result):
        print(f"{name:<40} {ratio:>7}  {numbers}")


if __name__ == "__main__":
    main()

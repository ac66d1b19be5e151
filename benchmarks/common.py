"""Helpers shared by the benchmark scripts: UCF101-sized test data, timers, the device's name."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from pipeline.autotune import cpu_name
from pipeline.synthetic import SyntheticConfig, generate
from pipeline.video import write_video

#: CPU cores of a lent GPU machine (H100/H200): the worker count the scaled decode estimate assumes.
GPU_MACHINE_CORES = 16


def make_clip(path: Path, num_frames: int = 150, height: int = 240, width: int = 320, seed: int = 0) -> Path:
    """A UCF101-sized clip (320x240 mpeg4 AVI by default) with moving textured content."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height, width * 2, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, -3 * t, axis=1)[:, :width] for t in range(num_frames)])
    return write_video(path, frames, fps=25)


def make_ucf101(out: Path, videos: int, frames: int = 64, distinct: int = 32, workers: int = 2) -> Path:
    """A UCF101-layout dataset of ``videos`` (at least 4) 320x240 mpeg4 AVIs in split 1, for the extraction benchmarks.

    ``distinct`` videos are rendered by ``make-synthetic`` (moving objects on textured
    backgrounds, about 1.5 Mb/s, like UCF101's files); the rest are hard links to them under
    new names, listed in ``trainlist01.txt`` like the others. Decoding and the teacher cost the
    same per file either way, and rendering hundreds of videos would take longer than
    measuring them.
    """
    distinct = max(2, min(distinct, videos))
    per_class = max(2, -(-distinct // 2))
    root = generate(
        SyntheticConfig(
            out=str(out),
            classes=2,
            videos_per_class=per_class,
            groups=2,
            frames=frames,
            height=240,
            width=320,
            workers=max(1, workers),
        )
    )
    lists = root / "ucfTrainTestlist"
    classes = (lists / "classInd.txt").read_text().split()[1::2]
    originals = sorted((root / "UCF-101").glob("*/*.avi"))
    lines = []
    for i in range(videos - len(originals)):
        src = originals[i % len(originals)]
        dst = src.with_name(f"{src.stem}_r{i:05d}.avi")
        os.link(src, dst)
        cls = src.parent.name
        lines.append(f"{cls}/{dst.name} {classes.index(cls) + 1}\r\n")
    with open(lists / "trainlist01.txt", "ab") as fh:
        fh.write("".join(lines).encode())
    return root


@contextlib.contextmanager
def fresh_run_config() -> Iterator[Path]:
    """Point ``HALLUCINET_CACHE_DIR`` at an empty folder, so ``auto`` measures in this run.

    :func:`pipeline.autotune.fastest_config` remembers its choice per machine; a benchmark that
    reports what ``auto`` chose must not read (or overwrite) a choice another run left.
    """
    old = os.environ.get("HALLUCINET_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="hallucinet-bench-") as tmp:
        os.environ["HALLUCINET_CACHE_DIR"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("HALLUCINET_CACHE_DIR", None)
            else:
                os.environ["HALLUCINET_CACHE_DIR"] = old


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a host clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest wall time of ``repeats`` calls (the least disturbed by other work)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu_count() -> int:
    """The cores this process may run on (its affinity, as taskset and Slurm set it), not the machine's."""
    return len(os.sched_getaffinity(0))


def threads_per_job(jobs: int) -> int:
    """Threads for each of ``jobs`` runs side by side: the usable cores shared out, at least one."""
    return max(1, cpu_count() // jobs)


def describe_device(device: torch.device) -> dict:
    """What the numbers were measured on: the device, the CPU and its usable cores, torch."""
    return {
        "device_type": device.type,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu": cpu_name(),
        "cpu_cores": cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }

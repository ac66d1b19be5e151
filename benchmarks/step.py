"""The default benchmark's training step against its compute: what of it is arithmetic, what is not.

One run, the default student's shapes (``small``, batch 32, 48-pixel frames cropped to 42, the
hallucination head, Adam), on a synthetic cache, with the product's own ``Trainer.train_step``:

- **step**: milliseconds per step on a resident batch, with this process's threads.
- **compute floor**: the step's arithmetic (3x the forward's FLOPs: forward, input and weight
  gradients) at the machine's measured fp32 matrix-multiply rate, and the step's share of it.
- **split**: where the step's CPU time goes, from torch's profiler: convolutions (forward and
  backward), batch norm, ReLU, the optimiser, the crop and mirror, and everything else (the loss,
  dispatch, autograd bookkeeping).
- **side by side**: ``jobs`` processes of one thread each, training at once, against one process
  with every thread: a small student's step leaves cores idle, and the protocol's grid and switches
  train runs side by side (``benchmarks/protocol.py --jobs``).
- **torch.compile**: the same step with the student compiled (inductor), against eager, both on
  one thread in one worker process, one after the other (the compiled run's set-up and warm-up,
  where it compiles, reported apart): whether fusing the small student's operators removes what
  is not compute.

Run: ``python -m benchmarks.step [--steps N] [--jobs N] [--no-compile]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from joblib import Parallel, delayed

from benchmarks.common import cpu_count, describe_device
from benchmarks.train import synthetic_cache
from pipeline.profile import measure_cost
from student_train.data import make_loader
from student_train.train import TrainConfig, Trainer

#: The default benchmark's student and shapes (params.yaml, train_student and extract_teacher).
DEFAULT = dict(student="small", batch_size=32, crop_size=42, lr=3e-3, loss="mse_sigmoid", lambda_weight=200.0)
IMAGE_SIZE, FEATURE_DIM, CLIPS = 48, 128, 1536

#: Profiler operator names -> the split's parts (the first match wins; the rest is "other").
PARTS = {
    "convolution": ("convolution", "conv2d"),
    "batch norm": ("batch_norm",),
    "relu": ("relu", "threshold_backward", "clamp_min"),
    "optimiser": ("adam", "optimizer"),
    "crop and mirror": ("index", "flip"),
}


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matrix-multiply rate with this process's threads: the compute limit."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - t0) / 1e9


def trainer_and_batches(cache: Path, out: str) -> tuple[Trainer, list]:
    trainer = Trainer(TrainConfig(cache=str(cache), out=out, device="cpu", **DEFAULT))
    trainer.model.train()
    loader = make_loader(
        trainer.cache, trainer.train_rows, trainer.preset, batch_size=trainer.batch_size, train=True, seed=0
    )
    return trainer, list(loader)


def step_seconds(cache: Path, out: str, steps: int, threads: int | None = None, compiled: bool = False) -> float:
    """Seconds per ``train_step`` over ``steps`` steps (after 10 warm-up steps, which compile when ``compiled``)."""
    if threads:
        torch.set_num_threads(threads)
    trainer, batches = trainer_and_batches(cache, out)
    if compiled:
        trainer.model = torch.compile(trainer.model)
    for batch in batches[:10]:
        trainer.train_step(batch)
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.train_step(batches[i % len(batches)])
    return (time.perf_counter() - t0) / steps


def split(trainer: Trainer, batches: list, steps: int) -> dict[str, float]:
    """Milliseconds per step of each part of :data:`PARTS` (self CPU time of their operators)."""
    from torch.profiler import profile

    with profile() as prof:
        for i in range(steps):
            trainer.train_step(batches[i % len(batches)])
    parts = dict.fromkeys([*PARTS, "other"], 0.0)
    for event in prof.key_averages():
        name = event.key.lower()
        part = next((p for p, keys in PARTS.items() if any(k in name for k in keys)), "other")
        parts[part] += event.self_cpu_time_total / 1000 / steps
    return parts


def compile_vs_eager(cache: Path, tmp: str, steps: int) -> dict[str, float]:
    """One thread, in this process: the eager step, then the compiled one and what its compile cost."""
    eager = step_seconds(cache, f"{tmp}/eager", steps, 1)
    t0 = time.perf_counter()
    compiled = step_seconds(cache, f"{tmp}/compiled", steps, 1, compiled=True)
    # the call's time beyond its timed steps: building the trainer and the warm-up steps, which compile
    setup = time.perf_counter() - t0 - steps * compiled
    return {"eager_ms": 1000 * eager, "compiled_ms": 1000 * compiled, "compile_s": setup}


def measure(steps: int = 200, jobs: int | None = None, compile_step: bool = True) -> dict:
    jobs = jobs or cpu_count()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        cache = synthetic_cache(Path(tmp) / "f.h5", CLIPS, IMAGE_SIZE, FEATURE_DIM, classes=8)
        step = step_seconds(cache, f"{tmp}/one", steps)
        trainer, batches = trainer_and_batches(cache, f"{tmp}/split")
        parts = split(trainer, batches, min(steps, 30))
        gflops = measure_cost(trainer.model.eval(), torch.rand(1, 3, DEFAULT["crop_size"], DEFAULT["crop_size"]))
        step_gflop = 3 * DEFAULT["batch_size"] * gflops["gflops"]
        side = Parallel(n_jobs=jobs, backend="loky")(
            delayed(step_seconds)(cache, f"{tmp}/job{j}", steps, 1) for j in range(jobs)
        )
        compiled = (
            Parallel(n_jobs=1, backend="loky")([delayed(compile_vs_eager)(cache, tmp, steps)])[0]
            if compile_step
            else None
        )
    peak = matmul_gflops()
    return {
        "machine": describe_device(torch.device("cpu")),
        "threads": threads,
        **DEFAULT,
        "step_ms": 1000 * step,
        "step_gflop": step_gflop,
        "matmul_gflops_per_s": peak,
        "compute_floor_ms": 1000 * step_gflop / peak,
        "step_gflops_per_s": step_gflop / step,
        "split_ms": parts,
        "side_by_side_jobs": jobs,
        "side_by_side_step_ms": [1000 * s for s in side],
        "side_by_side_vs_one": jobs * step / max(side),
        "compile": compiled,
    }


def rows(r: dict) -> list[tuple[str, str, str]]:
    """Table rows ``(figure, ratio, its two numbers)``, as :func:`benchmarks.suite.table` prints them."""
    parts = ", ".join(f"{k} {v:.2f}" for k, v in r["split_ms"].items())
    return [
        (
            "compute floor vs training step",
            f"{r['compute_floor_ms'] / r['step_ms']:.2f}",
            f"{r['compute_floor_ms']:.2f} vs {r['step_ms']:.2f} ms ({r['step_gflop']:.2f} GFLOP at "
            f"{r['matmul_gflops_per_s']:.0f} GFLOP/s, {r['threads']} threads)",
        ),
        ("step split (ms)", "", parts),
        (
            f"{r['side_by_side_jobs']} one-thread runs vs one run",
            f"{r['side_by_side_vs_one']:.2f}x",
            f"steps of {', '.join(f'{s:.2f}' for s in r['side_by_side_step_ms'])} ms side by side "
            f"vs {r['step_ms']:.2f} ms alone",
        ),
        *_compile_rows(r),
    ]


def _compile_rows(r: dict) -> list[tuple[str, str, str]]:
    c = r.get("compile")
    if not c:
        return []
    return [
        (
            "torch.compile vs eager step (1 thread)",
            f"{c['eager_ms'] / c['compiled_ms']:.2f}x",
            f"{c['compiled_ms']:.2f} vs {c['eager_ms']:.2f} ms per step "
            f"(set-up and compile {c['compile_s']:.0f} s, once)",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="Timed steps per measurement.")
    parser.add_argument("--jobs", type=int, default=None, help="One-thread runs side by side [default: cores].")
    parser.add_argument("--no-compile", action="store_true", help="Skip the torch.compile comparison (about 30 s).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.steps, args.jobs, compile_step=not args.no_compile)
    print(json.dumps(result, indent=2))
    for name, ratio, numbers in rows(result):
        print(f"{name:<40} {ratio:>7}  {numbers}")


if __name__ == "__main__":
    main()

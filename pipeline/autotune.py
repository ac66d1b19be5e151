"""``auto`` precision and memory format for a model's forward pass, decided by measurement.

Not by a CPU flag: machines of this project's kind differ (one 2-core CPU ran r3d_18 2.8x faster
in bf16, another with AVX512-BF16 but no AMX ran it 1.7x slower in bf16 than in fp32 +
channels_last_3d). :func:`fastest_config` times the candidates on the real model and input shape,
refuses a precision whose outputs stray from fp32's, and remembers the answer per machine, so a
rerun never flips between two near-equal candidates. Only extraction (and the benchmarks) use
it; the names and checks the students need live in :mod:`pipeline.device`, so an edit here does
not rerun a student stage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pipeline.config import check_choice
from pipeline.device import MEMORY_FORMATS, PRECISIONS, autocast, memory_format
from pipeline.errors import OutOfSpace
from pipeline.outputs import atomic_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """How a model runs on a device: what ``auto`` resolves to, recorded with the outputs."""

    precision: str
    memory_format: str
    #: clips (or frames) per second of each candidate when it was measured, by ``"<precision>+<format>"``.
    timings: tuple[tuple[str, float], ...] = ()


def time_forward(
    model: torch.nn.Module,
    example: torch.Tensor,
    device: torch.device,
    precision: str,
    fmt: str,
    *,
    min_runs: int = 3,
    min_seconds: float = 0.5,
) -> tuple[float, torch.Tensor]:
    """Items per second of ``model`` on ``example`` (median run after one warm-up), and its output.

    Runs until at least ``min_runs`` timed runs and ``min_seconds`` have passed (two runs suffice
    once 5 s have passed): the median of several runs is robust to another process
    stealing the CPU for a moment. The model's first output is returned (as float32 on the CPU)
    so candidates can be checked against each other; ``model`` is left in ``fmt``'s memory format.
    """
    mf = memory_format(fmt, example.ndim)
    model.to(memory_format=mf)
    x = example.to(device).contiguous(memory_format=mf)
    times: list[float] = []
    with torch.inference_mode(), autocast(device, precision):
        out = model(x)  # warm-up: caches, kernel selection
        while not ((len(times) >= min_runs and sum(times) >= min_seconds) or (len(times) >= 2 and sum(times) >= 5.0)):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            out = model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    first = out[0] if isinstance(out, tuple | list) else out
    return example.shape[0] / statistics.median(times), first.float().cpu()


def screen(
    model: torch.nn.Module,
    example: torch.Tensor,
    device: torch.device,
    candidates: list[tuple[str, str]],
    measure: Callable[..., tuple[float, torch.Tensor]] = time_forward,
    *,
    slack: float = 2.0,
) -> list[tuple[str, str]]:
    """The candidates worth timing on the full batch: within ``slack`` of the fastest on one item.

    Emulated bf16 on a CPU without native support can run a 3D-CNN tens of times slower than
    fp32 (minutes per batch for r3d_18 here); one item shows that cheaply. fp32 is always kept
    (it is the reference the others are checked against). Order is kept.
    """
    if len(candidates) <= 1 or example.shape[0] <= 1:
        return candidates
    one = example[:1]
    quick = {"min_runs": 1, "min_seconds": 0.0} if measure is time_forward else {}
    rates = {c: measure(model, one, device, *c, **quick)[0] for c in candidates}
    best = max(rates.values())
    kept = [c for c in candidates if c[0] == "fp32" or rates[c] * slack >= best]
    for c in candidates:
        if c not in kept:
            logger.info("%s+%s: %.3g items/s on one item, under 1/%g of the best: not timed", *c, rates[c], slack)
    return kept


def _probe_file() -> Path:
    base = os.environ.get("HALLUCINET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hallucinet"
    )
    return Path(base) / "run-config.json"


@functools.cache
def cpuinfo(field: str) -> str | None:
    """The first ``field`` line of ``/proc/cpuinfo`` (``model name``, ``flags``...), or None off Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (what timings were measured on)."""
    return cpuinfo("model name") or platform.processor() or platform.machine()


def _machine() -> str:
    return f"{cpu_name()} x{os.cpu_count()}"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {_machine()} threads={torch.get_num_threads()}"


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 runs in hardware: a CUDA device that supports it, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bf16 is emulated, and a 3D-CNN runs minutes per batch (measured: r3d_18 on a 2-core
    AVX2-only CPU did not finish one clip in bf16 in the time fp32 ran a hundred), so ``auto``
    does not even time it there. It is still measured, not assumed, where it is native: on a
    CPU with AVX512-BF16 but no AMX it was 1.7x *slower* than fp32 + channels_last_3d.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(flag in _cpu_flags() for flag in ("avx512_bf16", "amx_bf16"))


def _cpu_flags() -> frozenset[str]:
    return frozenset((cpuinfo("flags") or "").split())


def fastest_config(
    name: str,
    model: torch.nn.Module,
    example: torch.Tensor,
    device: torch.device,
    *,
    precision: str = "auto",
    fmt: str = "auto",
    tolerance: float = 0.05,
    measure: Callable[..., tuple[float, torch.Tensor]] = time_forward,
) -> RunConfig:
    """Resolve ``auto`` precision and memory format by timing the candidates on this device.

    Args:
        name: the model's name (part of the remembered answer's key, with the input shape,
            device, CPU model, thread count and torch version).
        model: the model, in eval mode on ``device``.
        example: an input of the real batch shape (random values are fine).
        device: where it runs.
        precision, fmt: ``auto`` to measure, or a fixed choice (then only the other is measured).
        tolerance: largest ``max|out - out_fp32| / max|out_fp32|`` a bf16 candidate may show.
        measure: the timing function (tests replace it).

    Returns:
        The fastest correct candidate; fixed choices are returned unmeasured.
    """
    check_choice("precision", precision, PRECISIONS)
    check_choice("memory format", fmt, MEMORY_FORMATS)
    precisions = ("fp32", "bf16") if precision == "auto" else (precision,)
    if precision == "auto" and not bf16_is_native(device):
        precisions = ("fp32",)
    formats = ("contiguous", "channels_last") if fmt == "auto" else (fmt,)
    if len(precisions) == 1 and len(formats) == 1:
        return RunConfig(precisions[0], formats[0])

    key = "|".join(
        [name, "x".join(map(str, example.shape)), _device_name(device), torch.__version__, *precisions, *formats]
    )
    key = hashlib.sha256(key.encode()).hexdigest()[:24]
    store = _probe_file()
    known = _read_json(store)
    if key in known:
        found = known[key]
        return RunConfig(found["precision"], found["memory_format"], tuple(map(tuple, found["timings"])))

    candidates = [(p, f) for p in ("fp32", *(p for p in precisions if p != "fp32")) for f in formats]
    candidates = screen(model, example, device, candidates, measure)
    timings: dict[str, float] = {}
    reference: torch.Tensor | None = None
    for prec, f in candidates:
        rate, out = measure(model, example, device, prec, f)
        if reference is None:
            reference = out
        err = float((out - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
        if prec != "fp32" and err > tolerance:
            logger.info("%s %s+%s: outputs differ from fp32 by %.3g, not a candidate", name, prec, f, err)
            continue
        if prec in precisions:
            timings[f"{prec}+{f}"] = rate
    best = max(timings, key=timings.__getitem__)
    choice = RunConfig(*best.split("+"), timings=tuple(sorted(timings.items())))
    logger.info(
        "%s on %s: %s is fastest (%s)",
        name,
        _device_name(device),
        best,
        ", ".join(f"{k} {v:.3g}/s" for k, v in choice.timings),
    )
    known[key] = asdict(choice)
    _write_json(store, known)
    return choice


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    # Best effort: a read-only home must not stop a run, it only makes the next run measure again.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, unique=True) as tmp:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    except (OSError, OutOfSpace) as err:
        logger.debug("cannot remember the run configuration in %s: %s", path, err)

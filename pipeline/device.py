"""Device and precision choices shared by both stages: ``auto`` means the best this machine has."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but no CUDA device is available; use 'cpu' or 'auto'")
    return device


@functools.cache
def _cpu_has_native_bf16() -> bool:
    # Without AVX512-BF16 or AMX, CPU bf16 is emulated and slower than fp32 (measured here:
    # r3d_18 slows down), so "auto" only picks it where the hardware has it.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device, *, cpu_bf16: bool = True) -> str:
    """``auto`` -> ``bf16`` on CUDA with bf16 support or a CPU with native bf16, else ``fp32``.

    ``cpu_bf16=False`` keeps ``auto`` at fp32 on every CPU: the student does so, because oneDNN's
    bf16 kernels are not bit-reproducible run to run, and a resumed or re-evaluated run must
    give the same numbers.
    """
    if name not in PRECISIONS:
        raise ValueError(f"invalid precision {name!r}; choose from {', '.join(PRECISIONS)}")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16 and _cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """An autocast context for ``precision`` (disabled for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

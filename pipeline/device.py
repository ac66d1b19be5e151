"""Device, precision and memory format: the names, their checks, and what they resolve to.

Extraction's ``auto`` precision and memory format are measured (:mod:`pipeline.autotune`);
the students' rule needs no measurement (:func:`resolve_precision`).
"""

from __future__ import annotations

import logging

import torch

from pipeline.config import check_choice
from pipeline.errors import UserError

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def check_device(name: str) -> None:
    """Refuse a device name that is not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if name not in DEVICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise UserError(f"invalid device {name!r}; choose from {', '.join(DEVICES)} or cuda:N")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but no CUDA device is available; use 'cpu' or 'auto'")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """The student's rule: ``auto`` -> ``bf16`` on CUDA with bf16 support, else ``fp32``.

    Never bf16 on a CPU under ``auto``: oneDNN's bf16 kernels are not bit-reproducible run to
    run, and a resumed or re-evaluated student must give the same numbers.
    """
    check_choice("precision", name, PRECISIONS)
    if name != "auto":
        return name
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """An autocast context for ``precision`` (disabled for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(name: str, ndim: int) -> torch.memory_format:
    """``channels_last`` -> ``channels_last_3d`` for 5-d (video) input, ``channels_last`` for 4-d."""
    if name == "contiguous":
        return torch.contiguous_format
    return torch.channels_last_3d if ndim == 5 else torch.channels_last

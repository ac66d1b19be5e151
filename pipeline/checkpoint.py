"""Checkpoint files shared by both stages: read a state_dict in any common wrapping, hash a
file for provenance, and save atomically so a crash never leaves half a checkpoint."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The state_dict in ``path`` and the class names stored beside it (empty if none).

    Accepts a plain state_dict or a dict holding one under ``state_dict`` or ``model``;
    ``module.`` prefixes (DataParallel/DDP) are stripped.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle/zip errors come in many types
        raise ValueError(f"{path} is not a PyTorch checkpoint: {err}") from err
    classes: tuple[str, ...] = ()
    if isinstance(ckpt, dict) and ("state_dict" in ckpt or "model" in ckpt):
        classes = tuple(ckpt.get("classes") or ())
        ckpt = ckpt.get("state_dict", ckpt.get("model"))
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f"{path} holds no state_dict (expected a state_dict or a dict with 'state_dict')")
    return {k.removeprefix("module."): v for k, v in ckpt.items()}, classes


def file_hash(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes: names weights in provenance independent of their path."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``<path>.tmp`` then rename: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path

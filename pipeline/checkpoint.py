"""Checkpoint files shared by both stages: read a state_dict in any common wrapping, hash a
file for provenance, and save atomically so a crash never leaves half a checkpoint.

Every checkpoint is read with ``torch.load(..., weights_only=True)``: a full pickle can run any
code while it loads, and a checkpoint is exactly the kind of file people download from strangers.
What we write (state_dicts, numbers, strings, lists and dicts of them) loads that way unchanged.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import UserError
from pipeline.outputs import atomic_path


def load_safely(path: str | Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with errors a user can act on.

    Raises:
        UserError: the file is not a PyTorch checkpoint, or it needs arbitrary unpickling (a
            pickled ``nn.Module`` or other Python objects), which would run code from the file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        # The weights-only unpickler stopped at a global it does not allow, e.g. a model's class.
        found = re.search(r"GLOBAL (\S+)", text)
        if "Weights only load failed" not in text or found is None:
            # Not a pickle of Python objects at all (a text file, a truncated download): nothing to convert.
            detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
            reason = detail.group(1).strip() if detail else _first_line(err)
            raise UserError(f"{path} is not a PyTorch checkpoint ({reason})") from err
        needs = f" ({found.group(1)})"
        raise UserError(
            f"{path} holds pickled Python objects{needs}, not just tensors, and loading them could run code "
            "from the file: refused. To convert it, in the environment that made it and only if you trust it, "
            "load the model and save torch.save(model.state_dict(), path)"
        ) from err
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # the CLI reports these in one line already
    except Exception as err:  # zip, EOF and legacy-format errors come in many types
        raise UserError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The state_dict in ``path`` and the class names stored beside it (empty if none).

    Accepts a plain state_dict or a dict holding one under ``state_dict`` or ``model``;
    ``module.`` prefixes (DataParallel/DDP) are stripped.

    Raises:
        UserError: not a checkpoint, a pickled full model (see :func:`load_safely`), or no state_dict inside.
    """
    path = Path(path)
    ckpt = load_safely(path)
    classes: tuple[str, ...] = ()
    if isinstance(ckpt, dict) and ("state_dict" in ckpt or "model" in ckpt):
        classes = tuple(ckpt.get("classes") or ())
        ckpt = ckpt.get("state_dict", ckpt.get("model"))
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise UserError(f"{path} holds no state_dict (expected a state_dict or a dict with 'state_dict')")
    return {k.removeprefix("module."): v for k, v in ckpt.items()}, classes


def file_hash(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes: names weights in provenance independent of their path."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`~pipeline.outputs.atomic_path`: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path

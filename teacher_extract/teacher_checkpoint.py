"""What a ``fit-teacher`` checkpoint says about itself, for the commands that read one.

Its own module, not ``fit.py``: extraction needs these two facts, and importing the trainer for
them would make every edit to fit-teacher rerun every extraction (a module is a DVC dependency
of each stage whose command imports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.checkpoint import load_safely
from pipeline.errors import UserError


def is_teacher_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint ``fit-teacher`` wrote (the only file its ``--out`` may replace)."""
    try:
        ckpt = load_safely(path)
    except UserError:
        return False
    return isinstance(ckpt, dict) and "teacher" in ckpt and "state_dict" in ckpt


def trained_on(path: str | Path) -> dict[str, Any] | None:
    """The training set a ``fit-teacher`` checkpoint records (``{dataset, split, videos: [[path, fingerprint]]}``).

    ``None`` for any other checkpoint (a third-party file records nothing).
    """
    try:
        ckpt = load_safely(path)
    except UserError:  # not ours to judge here: build_teacher reports unreadable weights
        return None
    record = ckpt.get("trained_on") if isinstance(ckpt, dict) else None
    return record if isinstance(record, dict) and isinstance(record.get("videos"), list) else None

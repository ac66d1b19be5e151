"""torchvision weights by name, for the teacher and the student registries alike.

A weights name is ``DEFAULT``, a member (``KINETICS400_V1``) or ``Enum.MEMBER``
(``R3D_18_Weights.KINETICS400_V1``); it is checked before anything is downloaded. torchvision
downloads the file into torch.hub's cache on first use; compute nodes often have no network,
and the bare ``URLError`` names neither the file nor where it must go, so a failed download is
one line that says both.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import UserError


def weights_member(kind: str, name: str, weights: str, enum: Any | None) -> Any:
    """The member of torchvision's weights ``enum`` (``None``: model ``name`` has none) that ``weights`` names.

    ``kind`` (``teacher``, ``student``) only words the error, which lists the valid names.
    """
    member = weights.split(".")[-1]
    if enum is not None and (weights.count(".") == 0 or weights.split(".")[0] == enum.__name__):
        if member == "DEFAULT":
            return enum.DEFAULT
        if member in enum.__members__:
            return enum[member]
    valid = [] if enum is None else ["DEFAULT", *(f"{enum.__name__}.{m}" for m in enum.__members__)]
    hint = f"valid weights names: {', '.join(valid)}" if valid else f"{name} has no torchvision weights"
    raise UserError(f"{kind} weights {weights!r} are neither an existing checkpoint file nor a weights name ({hint})")


def get_model(name: str, member: Any | None, **kwargs: Any) -> nn.Module:
    """``torchvision.models.get_model(name, weights=member)``; a failed download says how to work offline."""
    import torchvision  # here: importing it costs 1.9 s, which a student of our own need not pay

    if member is None:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    try:
        return torchvision.models.get_model(name, weights=member, **kwargs)
    except (urllib.error.URLError, OSError, RuntimeError) as err:  # RuntimeError: a hash mismatch
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        file_name = Path(urllib.parse.urlparse(member.url).path).name
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise UserError(
            f"could not download {type(member).__name__}.{member.name} ({member.url}): "
            f"{' '.join(str(reason).split())}. Offline, download that file elsewhere and put it in "
            f"{folder / file_name}, or pass a checkpoint path"
        ) from err

"""The one exception type for mistakes in what the user asked for.

Commands report a :class:`UserError` in one line (see :func:`pipeline.cli_utils.user_errors`);
every other exception is a bug and keeps its traceback, so the two never get confused.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

#: errno values that mean the disk (or the quota) is full.
FULL = (errno.ENOSPC, errno.EDQUOT)


class UserError(ValueError):
    """A mistake in what the user asked for: a bad option, path, file or dataset on disk.

    The message names the offending value and what would be accepted; the CLI reports it in one
    line (exit code 2). Subclassing ``ValueError`` keeps callers that catch ``ValueError`` working.
    """


class OutOfSpace(UserError):
    """A disk too full for what a command was about to write (checked before writing, or hit while writing)."""


def disk_full(err: BaseException, folder: str | Path) -> bool:
    """Whether ``err``, raised while writing into ``folder``, is a full disk.

    An ``OSError`` says so by its errno; torch.save reports a short write as a ``RuntimeError``
    ("unexpected pos ..."), so then the folder's free space decides (under 1 MB left).
    """
    if isinstance(err, OSError) and err.errno in FULL:
        return True
    try:
        return isinstance(err, RuntimeError) and shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def out_of_space(path: str | Path, err: BaseException) -> OutOfSpace:
    return OutOfSpace(f"{path}: no space left on the device while writing it; free some space and rerun ({err})")

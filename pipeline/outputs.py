"""Guarding outputs: one writer per output at a time, and never overwriting what the user did not ask to replace.

Commands write big files (a feature cache, a run folder) that take hours to make. Two runs
writing the same ``--out`` at once (a resubmitted Slurm job, a second terminal) corrupt each
other, and an ``--out`` that points at the wrong thing (the input cache, a folder of photos)
destroys it. :class:`OutputLock` prevents the first; :func:`check_output_file` and
:func:`check_output_dir` refuse the second, in one line, before anything is written; and
:func:`atomic_path` makes every file a command writes appear whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.errors import UserError, disk_full, out_of_space

logger = logging.getLogger(__name__)


def lock_path(out: Path) -> Path:
    """``<out>.lock``: beside the output, so it is seen by whoever looks at the output."""
    return out.with_name(out.name + ".lock")


class OutputLock:
    """Exclusive right to write ``out``, held as the file ``<out>.lock`` while the ``with`` block runs.

    The lock file is created atomically (``O_CREAT | O_EXCL``) and holds JSON ``{pid, host,
    command, started}``, so a refusal can say who holds it. A lock whose process is gone (same
    host, pid not alive: a killed job) is stale and taken over with a warning. A lock from another
    host cannot be checked and is always respected. The file is removed on any exit from the block,
    exceptions included; nothing global (atexit, signal handlers) is registered, so a process killed
    by SIGKILL leaves a stale lock, which the next run detects.

    Example::

        with OutputLock(Path("features.h5"), "extract-teacher"):
            ...  # write features.h5

    Raises (on enter):
        UserError: another live process holds the lock, naming it, its pid, host and start time.
    """

    def __init__(self, out: Path, command: str):
        self.out = Path(out)
        self.command = command
        self.path = lock_path(self.out)
        self._inode: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # a few rounds: a stale lock taken over by someone else is re-examined
            if self._try_create():
                return self
            holder, inode = self._read_holder()
            if inode is None:
                continue  # released between our attempt and the read: try again
            if holder is not None and not _is_gone(holder):
                raise UserError(_held_message(self.out, self.path, holder))
            if holder is None:
                raise UserError(
                    f"{self.path} exists but is not a lock file this program wrote; "
                    f"remove it if no process is writing {self.out}"
                )
            logger.warning(
                "taking over the stale lock %s: %s (pid %s on %s) is no longer running",
                self.path,
                holder.get("command"),
                holder.get("pid"),
                holder.get("host"),
            )
            self._remove_if(inode)
        raise UserError(f"could not take {self.path}: other processes keep taking it; retry later")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._inode is not None:
            self._remove_if(self._inode)
            self._inode = None

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
            self._inode = os.fstat(fh.fileno()).st_ino
        return True

    def _read_holder(self) -> tuple[dict[str, Any] | None, int | None]:
        """The holder's JSON (``None`` if unparsable) and the lock file's inode (``None`` if it is gone).

        A lock is created empty and filled a moment later, so an empty file is re-read briefly.
        """
        for attempt in range(20):
            try:
                with open(self.path) as fh:
                    inode = os.fstat(fh.fileno()).st_ino
                    text = fh.read()
            except FileNotFoundError:
                return None, None
            try:
                holder = json.loads(text)
                return (holder if isinstance(holder, dict) and "pid" in holder else None), inode
            except json.JSONDecodeError:
                if text.strip() or attempt == 19:
                    return None, inode
                time.sleep(0.05)
        return None, None  # pragma: no cover

    def _remove_if(self, inode: int) -> None:
        """Remove the lock file only if it is still the one with ``inode`` (never someone else's fresh lock).

        Rename first (atomic), then check what was moved: if another process replaced the stale
        lock in between, its lock is put back.
        """
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if os.stat(aside).st_ino == inode:
            os.unlink(aside)
        else:
            os.rename(aside, self.path)


def _is_gone(holder: dict[str, Any]) -> bool:
    """True when the holder ran on this host and its pid no longer exists."""
    if holder.get("host") != socket.gethostname():
        return False  # cannot check another machine's processes
    try:
        pid = int(holder["pid"])
    except (TypeError, ValueError):
        return True
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by another user
    return False


def _held_message(out: Path, path: Path, holder: dict[str, Any]) -> str:
    return (
        f"{out} is being written by {holder.get('command', '?')} (pid {holder.get('pid', '?')} on host "
        f"{holder.get('host', '?')}, since {holder.get('started', '?')}); "
        f"wait for it or remove {path} if that process is gone"
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links, symbolic links, bind mounts
    except OSError:  # one does not exist (yet): compare the paths they would have
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop (RuntimeError before Python 3.13)
        return False


def check_output_file(out: Path, *, kind: str, accepts: Callable[[Path], bool], inputs: Iterable[Path] = ()) -> None:
    """Refuse an output file path that would destroy something the user did not ask to replace.

    Call it before writing ``out`` (a command's ``--out``). It is fine for ``out`` not to exist,
    or to be an earlier output of the same kind (rerunning a command replaces its own output).

    Args:
        out: the file about to be written (or replaced).
        kind: what the command writes, for the message (``"feature cache"``).
        accepts: whether an existing ``out`` is an output of this kind, safe to replace (e.g. a
            check of the cache's ``format`` attribute). It should return False, not raise, for
            a file it cannot read; an ``OSError`` or ``ValueError`` it raises counts as False.
        inputs: files the command reads; ``out`` must not be one of them, whatever its path
            spelling (symbolic links, ``..``, hard links).

    Raises:
        UserError: ``out`` is one of ``inputs``, or exists and is not a ``kind``.
    """
    out = Path(out)
    for source in inputs:
        if _same_file(out, Path(source)):
            raise UserError(f"--out {out} is the input {source}; refusing to overwrite it: choose another --out")
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir():
        raise UserError(f"{out} is a folder, not a {kind}; choose another --out")
    try:
        ok = bool(accepts(out))
    except (OSError, ValueError) as err:
        logger.debug("%s is not a %s: %s", out, kind, err)
        ok = False
    if not ok:
        raise UserError(
            f"{out} exists and is not a {kind}; refusing to overwrite it: choose another --out or remove it"
        )


def check_output_dir(out: Path, *, kind: str, marker_files: tuple[str, ...]) -> None:
    """Refuse an output folder that holds something else than an earlier output of this command.

    A missing or empty folder is fine (hidden entries such as ``.DS_Store`` or ``.gitignore``
    do not count), and so is one holding at least one of ``marker_files`` (the command's own
    earlier output, e.g. ``checkpoint.pt``, ``metrics.json``, ``log.csv`` for a train-student run).

    Args:
        out: the folder about to be written into.
        kind: the command whose output the folder holds, for the message (``"train-student"``).
        marker_files: names (files or folders) that only this command's outputs contain.

    Raises:
        UserError: ``out`` is an existing file, or a non-empty folder with none of ``marker_files``.
    """
    out = Path(out)
    if not out.exists():
        if out.is_symlink():
            raise UserError(f"{out} is a dangling symbolic link; choose another --out or remove it")
        return
    if not out.is_dir():
        raise UserError(f"{out} is a file, not a folder for {kind} output; choose another --out")
    # Empty folders hold nothing to lose: DVC removes a stage's outputs before rerunning it but
    # leaves their folders (``plots/``) behind.
    entries = [
        p.name
        for p in out.iterdir()
        if not p.name.startswith(".") and not (p.is_dir() and not any(q.is_file() for q in p.rglob("*")))
    ]
    if entries and not any((out / name).exists() for name in marker_files):
        shown = ", ".join(sorted(entries)[:3]) + (" ..." if len(entries) > 3 else "")
        raise UserError(
            f"{out} is not empty ({shown}) and holds no {kind} output (none of {', '.join(marker_files)}); "
            "refusing to write into it: choose another --out or remove it"
        )


@contextlib.contextmanager
def atomic_path(path: str | Path, *, unique: bool = False) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write by name; moved over ``path`` when the block succeeds.

    Before the rename the file is fsynced, so after a crash (a power cut too) ``path`` holds the
    old file or the whole new one, never half. Any error (a full disk, Ctrl-C, a bad entry)
    removes the temporary file, and a full disk becomes one :class:`~pipeline.errors.OutOfSpace`
    line naming ``path``. The temporary name is ``<path>.tmp``, so a run killed mid-write leaves
    one file that the next run overwrites; ``unique`` adds the process id, for a file that
    processes may write at the same time without a lock (the autotuner's memo).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp" if unique else f"{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError | RuntimeError) and disk_full(err, path.parent):
            raise out_of_space(path, err) from err
        raise
    os.replace(tmp, path)

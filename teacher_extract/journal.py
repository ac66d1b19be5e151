"""The crash journal of an extraction: every finished video saved at once, so a crash loses only those in flight."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from pipeline.cache import VideoEntry
from teacher_extract.plan import Known

logger = logging.getLogger(__name__)


class Journal:
    """Finished videos of an interrupted or running extraction, one atomic ``.npz`` each.

    Lives in ``<out>.partial/`` and belongs to one feature-defining config (``key``); a journal
    of another config is discarded, since its features would be wrong for this run.
    """

    def __init__(self, out: Path, key: str):
        self.dir = out.with_name(out.name + ".partial")
        stamp = self.dir / "config_key"
        if self.dir.exists() and (not stamp.is_file() or stamp.read_text() != key):
            logger.info("discarding %s: it was written with another teacher or preprocessing", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
        self.num_clips: dict[str, int] = {}  # clips per entry saved or loaded by this run

    def _file(self, path: str) -> Path:
        return self.dir / f"{hashlib.sha1(path.encode()).hexdigest()[:20]}.npz"

    def save(self, entry: VideoEntry) -> None:
        entry.save(self._file(entry.path))
        self.num_clips[entry.path] = len(entry.frames) if entry.ok else 0

    def known(self) -> dict[str, Known]:
        """``{path: Known(fingerprint, ok)}`` of every readable entry (only its metadata is read)."""
        found = {}
        for file in sorted(self.dir.glob("*.npz")):
            try:
                with np.load(file) as data:
                    meta = json.loads(str(data["meta"]))
            except (OSError, ValueError, KeyError) as err:  # renames are atomic, but disks fill up
                logger.warning("ignoring unreadable journal entry %s: %s", file, err)
                continue
            if self._file(meta["path"]) == file:
                found[meta["path"]] = Known(meta["fingerprint"], meta["status"] == "ok")
        return found

    def load(self, path: str, fp: str) -> VideoEntry | None:
        """The journal's entry for ``path`` if it was made from content ``fp``."""
        file = self._file(path)
        if not file.is_file():
            return None
        try:
            entry = VideoEntry.load(file)
        except (OSError, ValueError, KeyError) as err:
            logger.warning("ignoring unreadable journal entry %s: %s", file, err)
            return None
        if entry.path != path or entry.fingerprint != fp:
            return None
        self.num_clips[path] = len(entry.frames) if entry.ok else 0
        return entry

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

"""Small helpers the adapters share: reading annotation lines and reporting missing videos."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.datasets.base import DatasetError, VideoRecord

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, stripped_line)`` of a text file, skipping blank lines.

    Handles CRLF (UCF101's split files), a UTF-8 BOM and trailing blank lines.
    """
    if not path.is_file():
        raise DatasetError(f"annotation file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text: {err}") from err
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line:
            yield number, line


def check_options(name: str, options: dict[str, Any], valid: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DatasetError(
            f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; valid options: {', '.join(valid) or 'none'}"
        )


def keep_existing(root: Path, records: list[VideoRecord], source: Path | str) -> tuple[list[VideoRecord], list[str]]:
    """Split records into those whose file exists and the paths of those that don't.

    A few missing files is normal (Kinetics loses videos to YouTube): one warning with a count,
    not one line per video. If nothing exists, the root is almost certainly wrong: an error.
    """
    present, missing = [], []
    for record in records:
        (present if (root / record.path).is_file() else missing).append(record)
    if missing:
        shown = ", ".join(r.path for r in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        if not present:
            raise DatasetError(
                f"none of the {len(missing)} videos listed in {source} exist under {root} (e.g. {shown})"
            )
        logger.warning(
            "%d of %d listed videos are missing under %s: %s%s", len(missing), len(records), root, shown, more
        )
    return present, [r.path for r in missing]

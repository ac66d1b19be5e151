"""Small helpers the adapters share: reading annotation lines, reporting missing or odd videos,
and reading a mirror-pairs file."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.datasets.base import DatasetError, VideoRecord
from pipeline.frame_folder import frame_folder_problem, is_frame_folder
from pipeline.video import unusable

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


def not_a_file(path: Path) -> str | None:
    """Why ``path``, an entry that exists, is not a readable video; ``None`` for a regular file or a frame folder.

    Such entries (an empty folder named ``x.avi``, a dangling symbolic link) are still videos the
    dataset names: adapters keep them, and extraction records them as failed instead of aborting the run.
    """
    if path.is_file():
        return None
    if path.is_dir():
        return None if is_frame_folder(path) else "a directory"
    why = unusable(path)
    if why == "dangling symbolic link":
        return "a dangling symbolic link"
    return why or "not a regular file"


def warn_not_files(root: Path, odd: Sequence[tuple[str, str]]) -> None:
    """One warning for listed entries that exist but are not regular files (they become failed videos)."""
    if odd:
        shown = ", ".join(f"{rel} ({why})" for rel, why in odd[:3])
        more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
        logger.warning(
            "%d listed videos under %s are not files; kept, they will be recorded as failed: %s%s",
            len(odd),
            root,
            shown,
            more,
        )


def keep_existing(root: Path, records: list[VideoRecord], source: Path | str) -> tuple[list[VideoRecord], list[str]]:
    """Split records into those on disk and the paths of those that are not.

    A few missing files is normal (Kinetics loses videos to YouTube): one warning with a count,
    not one line per video. An entry that exists but is not a file (a folder named like the
    video, a dangling symbolic link) is kept, warned about separately, and fails at extraction
    with its reason. If no listed video is a file, the root is almost certainly wrong: an error.
    """
    present, missing, odd = [], [], []
    for record in records:
        path = root / record.path
        if not os.path.lexists(path):  # lexists: a dangling link is an entry, not a missing file
            missing.append(record)
            continue
        present.append(record)
        why = not_a_file(path)
        if why is not None:
            odd.append((record.path, why))
    if len(odd) == len(present) and (missing or odd):
        shown = ", ".join([r.path for r in missing[:3]] + [f"{rel} ({why})" for rel, why in odd[:3]])
        raise DatasetError(
            f"none of the {len(records)} videos listed in {source} is a file under {root} "
            f"({len(missing)} missing, {len(odd)} not files; e.g. {shown})"
        )
    if missing:
        shown = ", ".join(r.path for r in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        logger.warning(
            "%d of %d listed videos are missing under %s: %s%s", len(missing), len(records), root, shown, more
        )
    warn_not_files(root, odd)
    return present, [r.path for r in missing]


def keep_frame_folders(root: Path, records: list[VideoRecord], source: Path) -> tuple[list[VideoRecord], list[str]]:
    """Like :func:`keep_existing`, for datasets whose videos are frame folders (MTL-AQA, YUP++).

    A listed folder that does not exist is missing (counted, one warning); one that exists but is
    not a usable frame folder (empty, badly named frames) is kept and warned about, so extraction
    records it as failed with the reason. If no listed folder is usable, the root or the layout
    option is wrong: an error.
    """
    present = [r for r in records if os.path.lexists(root / r.path)]
    missing = [r.path for r in records if not os.path.lexists(root / r.path)]
    broken = [(r.path, why) for r in present if (why := frame_folder_problem(root / r.path)) is not None]
    if len(broken) == len(present):
        shown = ", ".join(missing[:3] + [f"{rel} ({why})" for rel, why in broken[:3]])
        raise DatasetError(
            f"none of the {len(records)} frame folders listed in {source} is usable under {root} "
            f"({len(missing)} missing, {len(broken)} without usable frames; e.g. {shown})"
        )
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        logger.warning(
            "%d of %d listed frame folders are missing under %s: %s%s",
            len(missing),
            len(records),
            root,
            ", ".join(missing[:3]),
            more,
        )
    if broken:
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        shown = ", ".join(f"{rel} ({why})" for rel, why in broken[:3])
        logger.warning(
            "%d listed frame folders under %s are not usable; kept, they will be recorded as failed: %s%s",
            len(broken),
            root,
            shown,
            more,
        )
    return present, missing


def read_mirror_pairs(path: Path, classes: Sequence[str]) -> tuple[int, ...]:
    """The label map of a horizontal mirror from a file of class-name pairs.

    Each non-blank line is ``ClassA ClassB``: a mirrored ``ClassA`` video is a ``ClassB`` video
    and the reverse (``SwipeLeft SwipeRight``). A class not listed maps to itself. CRLF line ends
    and a UTF-8 BOM are fine. Keeping this as data, beside the dataset, lets the student's flip
    augmentation stay correct for datasets with handed classes without any code knowing them.

    Returns:
        ``mirror`` with ``mirror[label]`` the label of the mirrored video, one entry per class.

    Raises:
        DatasetError: naming ``file:line`` for a malformed line, an unknown class, or a class
            that appears in two pairs (or is paired with itself).
    """
    label_of = {name: i for i, name in enumerate(classes)}
    mirror = list(range(len(classes)))
    seen: dict[str, int] = {}
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{path}:{number}: expected '<ClassA> <ClassB>', got {line!r}")
        if parts[0] == parts[1]:
            raise DatasetError(f"{path}:{number}: class {parts[0]!r} is paired with itself (leave it out instead)")
        for name in parts:
            if name not in label_of:
                shown = ", ".join(classes[:10]) + (f" and {len(classes) - 10} more" if len(classes) > 10 else "")
                raise DatasetError(f"{path}:{number}: unknown class {name!r}; classes: {shown}")
            if name in seen:
                raise DatasetError(f"{path}:{number}: class {name!r} is already paired on line {seen[name]}")
            seen[name] = number
        a, b = label_of[parts[0]], label_of[parts[1]]
        mirror[a], mirror[b] = b, a
    return tuple(mirror)

"""Kinetics: annotation CSVs ``label,youtube_id,time_start,time_end,split[,is_cc]`` and the videos.

The release ships one CSV per split side by side (``train.csv``, ``validate.csv``, ``test.csv``);
every CSV with the Kinetics columns in ``root`` (or ``root/annotations``) is read. The 2018+
CSVs say ``validate`` where downloads put the videos in ``val/``; the test CSV of some releases
has no ``label`` column (its rows cannot be scored and are skipped, said once). Videos are found
in either common layout, detected once per split folder:

- ``<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`` (label folders; spaces in a label
  may be underscores on disk);
- ``<split>/<youtube_id>_<start:06d>_<end:06d>.mp4`` (flat, as the CVDF tarballs unpack).

A few percent of Kinetics rows have no file (videos vanish from YouTube): they are counted in
``missing`` with one warning, never fatal.
"""

from __future__ import annotations

import csv
import itertools
import logging
from pathlib import Path

from pipeline.datasets._common import check_options, keep_existing
from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS

logger = logging.getLogger(__name__)

_SPLITS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
#: Folder names each split's videos are found under, the CSV's own word first.
_FOLDERS = {"train": ("train",), "val": ("val", "validate", "validation", "valid"), "test": ("test",)}
_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def _find_csvs(root: Path, annotations: str | list[str] | None) -> list[Path]:
    if annotations:
        paths = [Path(a) for a in ([annotations] if isinstance(annotations, str) else annotations)]
        paths = [p if p.is_absolute() else root / p for p in paths]
        for path in paths:
            if not path.is_file():
                raise DatasetError(f"Kinetics annotations {path} do not exist")
        return paths
    for folder in (root, root / "annotations"):
        found = [p for p in sorted(folder.glob("*.csv")) if "youtube_id" in _header(p)]
        if found:
            return found
    raise DatasetError(
        f"no Kinetics CSV (with a youtube_id column) in {root} or {root / 'annotations'}; "
        "set dataset_options.annotations"
    )


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return []


def _read(path: Path) -> tuple[list[tuple[str, str, int, int, str, str]], int]:
    """Rows ``(label, youtube_id, start, end, raw split, split)`` of one CSV, and how many had no label."""
    rows, unlabelled = [], 0
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or ()
        absent = [c for c in _COLUMNS if c not in fields and c != "label"]
        if absent:
            raise DatasetError(f"{path}: missing column(s) {', '.join(absent)}; expected {','.join(_COLUMNS)}")
        for number, row in enumerate(reader, 2):
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
                raw = row["split"].strip()
                which = _SPLITS[raw.lower()]
                label = (row.get("label") or "").strip()
            except (KeyError, ValueError, AttributeError) as err:
                raise DatasetError(f"{path}:{number}: malformed row {row!r} ({err})") from err
            if not label:
                unlabelled += 1
                continue
            rows.append((label, row["youtube_id"].strip(), start, end, raw, which))
    return rows, unlabelled


class _Layout:
    """Where one split's videos are on disk: its folder, and whether it has label folders."""

    def __init__(self, root: Path, raw: str, split: str):
        candidates = (raw, *(f for f in _FOLDERS[split] if f != raw))
        self.folder = next((f for f in candidates if (root / f).is_dir()), raw)
        base = root / self.folder
        entries = list(itertools.islice(base.iterdir(), 64)) if base.is_dir() else []
        self.flat = bool(entries) and not any(e.is_dir() for e in entries)
        self.base, self._labels = base, {}

    def path(self, label: str, name: str) -> str:
        if self.flat:
            return f"{self.folder}/{name}"
        if label not in self._labels:  # the label's folder as it is spelled on disk
            spelled = (label, label.replace(" ", "_"))
            self._labels[label] = next((s for s in spelled if (self.base / s).is_dir()), label)
        return f"{self.folder}/{self._labels[label]}/{name}"


@DATASETS.register("kinetics")
def kinetics(root: Path, split: str, **options) -> DatasetIndex:
    """Index a Kinetics copy from its annotation CSVs.

    ``split`` is recorded as the dataset's split id (e.g. ``"400"``); the train/val/test
    membership of each video comes from the CSVs' ``split`` column (``validate`` -> ``val``).
    Classes are the sorted unique labels.

    Options:
        annotations: a CSV, or a list of them, relative to ``root`` or absolute (default: every
            CSV with a ``youtube_id`` column in ``root``, else in ``root/annotations``).
    """
    check_options("kinetics", options, ("annotations",))
    paths = _find_csvs(root, options.get("annotations"))
    rows = []
    for path in paths:
        read, unlabelled = _read(path)
        rows += read
        if unlabelled:
            logger.info("%s: %d rows without a label skipped (nothing to score them against)", path, unlabelled)
    if not rows:
        raise DatasetError(f"no labelled rows in {', '.join(str(p) for p in paths)}")
    classes = tuple(sorted({r[0] for r in rows}))
    label_of = {name: i for i, name in enumerate(classes)}
    layouts: dict[str, _Layout] = {}
    records = []
    for label, yid, start, end, raw, which in rows:
        layout = layouts.get(raw) or layouts.setdefault(raw, _Layout(root, raw, which))
        name = f"{yid}_{start:06d}_{end:06d}.mp4"
        records.append(VideoRecord(path=layout.path(label, name), label=label_of[label], split=which))
    source = paths[0] if len(paths) == 1 else f"{len(paths)} CSVs in {paths[0].parent}"
    present, missing = keep_existing(root, records, source)
    return DatasetIndex("kinetics", root, split, "classification", classes, tuple(present), tuple(missing))

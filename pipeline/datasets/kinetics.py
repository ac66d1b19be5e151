"""Kinetics: a CSV ``label,youtube_id,time_start,time_end,split[,is_cc]`` and files
``<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``.

A few percent of Kinetics rows have no file (videos vanish from YouTube): they are counted in
``missing`` with one warning, never fatal.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.datasets._common import check_options, keep_existing
from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS

_SPLITS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def _find_csv(root: Path, annotations: str | None) -> Path:
    if annotations:
        path = Path(annotations)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DatasetError(f"Kinetics annotations {path} do not exist")
        return path
    found = sorted(root.glob("*.csv")) or sorted((root / "annotations").glob("*.csv"))
    if len(found) != 1:
        listing = ", ".join(str(p) for p in found) or "none"
        raise DatasetError(
            f"expected exactly one Kinetics CSV in {root} or {root / 'annotations'} (found: {listing}); "
            "set dataset_options.annotations"
        )
    return found[0]


@DATASETS.register("kinetics")
def kinetics(root: Path, split: str, **options) -> DatasetIndex:
    """Index a Kinetics copy from its annotation CSV.

    ``split`` is recorded as the dataset's split id (e.g. ``"400"``); the train/val/test
    membership of each video comes from the CSV's ``split`` column (``validate`` -> ``val``).
    Classes are the sorted unique labels.

    Options:
        annotations: the CSV, relative to ``root`` or absolute (default: the only ``*.csv`` in
            ``root`` or ``root/annotations``).
    """
    check_options("kinetics", options, ("annotations",))
    path = _find_csv(root, options.get("annotations"))
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        absent = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise DatasetError(f"{path}: missing column(s) {', '.join(absent)}; expected {','.join(_COLUMNS)}")
        for number, row in enumerate(reader, 2):
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
                which = _SPLITS[row["split"].strip().lower()]
            except (KeyError, ValueError, AttributeError) as err:
                raise DatasetError(f"{path}:{number}: malformed row {row!r} ({err})") from err
            rows.append((row["label"].strip(), row["youtube_id"].strip(), start, end, row["split"].strip(), which))
    classes = tuple(sorted({r[0] for r in rows}))
    label_of = {name: i for i, name in enumerate(classes)}
    records = [
        VideoRecord(path=f"{raw}/{label}/{yid}_{start:06d}_{end:06d}.mp4", label=label_of[label], split=which)
        for label, yid, start, end, raw, which in rows
    ]
    present, missing = keep_existing(root, records, path)
    return DatasetIndex("kinetics", root, split, "classification", classes, tuple(present), tuple(missing))

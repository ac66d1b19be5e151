"""Any dataset laid out as one folder per class: ``<root>/<class>/<video>.{avi,mp4,...}``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipeline.datasets._common import VIDEO_SUFFIXES, check_options, not_a_file, warn_not_files
from pipeline.datasets.base import SPLITS, DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS
from pipeline.frame_folder import is_frame_folder


def _read_split_file(root: Path, name: str) -> dict[str, str]:
    path = Path(name) if Path(name).is_absolute() else root / name
    if not path.is_file():
        raise DatasetError(f"split file {path} does not exist")
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for number, row in enumerate(csv.DictReader(fh), 2):
            split = (row.get("split") or "").strip()
            if not row.get("path") or split not in SPLITS:
                raise DatasetError(f"{path}:{number}: expected 'path,split' with split in {', '.join(SPLITS)}")
            out[row["path"].strip()] = split
    return out


@DATASETS.register("folder")
def folder(root: Path, split: str, **options) -> DatasetIndex:
    """Classes are the sorted sub-folders of ``root``; videos are the files (and frame folders) inside them.

    Options:
        split_file: CSV ``path,split`` (relative to ``root``) assigning each video; videos it
            does not list are left out.
        test_fraction (0.2), val_fraction (0.0), seed (0): otherwise, a stratified seeded split:
            within each class (files sorted, then shuffled by a numpy Generator with ``seed``),
            the first ``round(n * test_fraction)`` videos (at least one when the class has two
            or more and test_fraction > 0) go to test, the next ``round(n * val_fraction)`` to val.
    """
    check_options("folder", options, ("split_file", "test_fraction", "val_fraction", "seed"))
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise DatasetError(f"{root} has no class folders")
    assigned = _read_split_file(root, options["split_file"]) if options.get("split_file") else None
    try:
        test_fraction = float(options.get("test_fraction", 0.2))
        val_fraction = float(options.get("val_fraction", 0.0))
        seed = int(options.get("seed", 0))
    except (TypeError, ValueError) as err:
        raise DatasetError(f"folder options test_fraction, val_fraction and seed must be numbers: {err}") from None
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise DatasetError(
            f"test_fraction {test_fraction} and val_fraction {val_fraction} must be in [0, 1) and sum below 1"
        )
    rng = np.random.default_rng(seed)
    records: list[VideoRecord] = []
    for label, name in enumerate(classes):
        # Every entry named like a video counts, even a folder or a dangling link: the dataset
        # names it, so extraction records it as a failed video rather than silently dropping it.
        files = sorted(
            p.relative_to(root).as_posix()
            for p in (root / name).iterdir()
            if p.suffix.lower() in VIDEO_SUFFIXES or is_frame_folder(p)
        )
        if assigned is not None:
            records += [VideoRecord(path=f, label=label, split=assigned[f]) for f in files if f in assigned]
            continue
        order = rng.permutation(len(files))
        n_test = round(len(files) * test_fraction)
        if test_fraction > 0 and len(files) >= 2:
            n_test = max(n_test, 1)
        n_val = round(len(files) * val_fraction)
        which = {
            int(i): ("test" if k < n_test else "val" if k < n_test + n_val else "train") for k, i in enumerate(order)
        }
        records += [VideoRecord(path=f, label=label, split=which[i]) for i, f in enumerate(files)]
    if not records:
        raise DatasetError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in the class folders of {root}")
    warn_not_files(root, [(r.path, why) for r in records if (why := not_a_file(root / r.path)) is not None])
    return DatasetIndex("folder", root, split, "classification", classes, tuple(records))

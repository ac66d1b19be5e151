"""A CSV manifest ``path,label,split`` (classification) or ``path,score,split`` (regression).

The regression form covers action-quality datasets (e.g. diving scores), the task HalluciNet
was also evaluated on.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from pipeline.datasets._common import check_options, keep_existing
from pipeline.datasets.base import SPLITS, DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS


@DATASETS.register("manifest")
def manifest(root: Path, split: str, **options) -> DatasetIndex:
    """Index the videos a CSV manifest lists (paths relative to ``root``).

    Classification labels are class names; classes are their sorted unique values (integers
    are treated as names too, so ``"10"`` sorts after ``"1"``: name your classes if order matters).

    Options:
        manifest: the CSV, relative to ``root`` or absolute (default ``manifest.csv``).
    """
    check_options("manifest", options, ("manifest",))
    path = Path(options.get("manifest", "manifest.csv"))
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise DatasetError(f"manifest {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = tuple(reader.fieldnames or ())
        if "path" not in fields or "split" not in fields or ("label" in fields) == ("score" in fields):
            raise DatasetError(
                f"{path}: header must be 'path,label,split' or 'path,score,split', got {','.join(fields)}"
            )
        regression = "score" in fields
        rows = []
        for number, row in enumerate(reader, 2):
            split_name = (row.get("split") or "").strip()
            if split_name not in SPLITS:
                raise DatasetError(f"{path}:{number}: split {split_name!r} is not one of {', '.join(SPLITS)}")
            value = (row.get("score" if regression else "label") or "").strip()
            if regression:
                try:
                    score = float(value)
                except ValueError:
                    raise DatasetError(f"{path}:{number}: score {value!r} is not a number") from None
                if not math.isfinite(score):
                    raise DatasetError(f"{path}:{number}: score {value!r} is not finite")
                value = score
            elif not value:
                raise DatasetError(f"{path}:{number}: empty label")
            rows.append(((row.get("path") or "").strip(), value, split_name))
    if regression:
        classes: tuple[str, ...] = ()
        records = [VideoRecord(path=p, score=v, split=s) for p, v, s in rows]
    else:
        classes = tuple(sorted({v for _, v, _ in rows}))
        label_of = {name: i for i, name in enumerate(classes)}
        records = [VideoRecord(path=p, label=label_of[v], split=s) for p, v, s in rows]
    present, missing = keep_existing(root, records, path)
    task = "regression" if regression else "classification"
    return DatasetIndex("manifest", root, split, task, classes, tuple(present), tuple(missing))

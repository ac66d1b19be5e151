"""HMDB51: ``<class>/<video>.avi`` and split files ``<class>_test_split{1,2,3}.txt``.

Each split-file line is ``<video>.avi <id>`` with 1 = train, 2 = test, 0 = unused. Classes are
sorted alphabetically, the convention of the dataset's published results.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets._common import check_options, keep_existing, read_lines
from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS

SPLIT_IDS = ("1", "2", "3")
_SPLIT_OF_ID = {"1": "train", "2": "test"}
_SPLIT_DIRS = ("testTrainMulti_7030_splits", "splits", ".")


@DATASETS.register("hmdb51")
def hmdb51(root: Path, split: str, **options) -> DatasetIndex:
    """Index split ``split`` ("1", "2" or "3") of an HMDB51 copy.

    Options:
        splits_dir: folder of the split files, relative to ``root`` or absolute. By default
            ``testTrainMulti_7030_splits/``, then ``splits/``, then ``root`` itself.
    """
    check_options("hmdb51", options, ("splits_dir",))
    splits_dir = options.get("splits_dir")
    if split not in SPLIT_IDS:
        raise DatasetError(f"invalid HMDB51 split {split!r}; valid splits: {', '.join(SPLIT_IDS)}")
    pattern = f"*_test_split{split}.txt"
    candidates = [root / splits_dir] if splits_dir else [root / d for d in _SPLIT_DIRS]
    found = next((d for d in candidates if d.is_dir() and any(d.glob(pattern))), None)
    if found is None:
        raise DatasetError(f"no HMDB51 split files {pattern} in {', '.join(str(d) for d in candidates)}")
    suffix = f"_test_split{split}.txt"
    # Sorted by class name, not by file name: "climb_test_split1.txt" sorts after
    # "climb_stairs_test_split1.txt" ('t' > 's'), the class "climb" before "climb_stairs".
    named = sorted((f.name[: -len(suffix)], f) for f in found.glob(pattern))
    classes = tuple(name for name, _ in named)
    files = [f for _, f in named]
    records: list[VideoRecord] = []
    for label, (name, path) in enumerate(zip(classes, files, strict=True)):
        for number, line in read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{path}:{number}: expected '<video>.avi <0|1|2>', got {line!r}")
            if parts[1] in _SPLIT_OF_ID:
                records.append(VideoRecord(path=f"{name}/{parts[0]}", label=label, split=_SPLIT_OF_ID[parts[1]]))
    present, missing = keep_existing(root, records, found)
    return DatasetIndex("hmdb51", root, split, "classification", classes, tuple(present), tuple(missing))

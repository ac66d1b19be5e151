"""UCF101: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and the official ``ucfTrainTestlist/``.

Quirks handled (DESIGN.md): CRLF line ends; 1-based labels in ``classInd.txt`` and the train
lists; label order is classInd's, not ``sorted()``; the test lists carry no label, so the class
comes from the folder part of the path, and folder names can differ in case from file names
(folder ``HandstandPushups`` holds ``v_HandStandPushups_*``).
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.datasets._common import check_options, keep_existing, read_lines, read_mirror_pairs
from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS

SPLIT_IDS = ("1", "2", "3")

#: Optional file beside classInd.txt naming the classes a horizontal mirror swaps. Real UCF101
#: has none (its actions keep their label when mirrored: identity); make-synthetic writes one.
MIRROR_PAIRS = "mirror_pairs.txt"


def read_class_index(path: Path) -> tuple[str, ...]:
    """Class names in label order from ``classInd.txt`` (lines ``1 ApplyEyeMakeup``)."""
    classes: dict[int, str] = {}
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}:{number}: expected '<index> <ClassName>', got {line!r}")
        classes[int(parts[0])] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise DatasetError(f"{path}: class indices must run 1..N without gaps, got {sorted(classes)}")
    return tuple(classes[i] for i in range(1, len(classes) + 1))


_GROUP = re.compile(r"_g(\d+)_c\d+\.\w+$")


def _group(rel: str) -> int | None:
    """The group number of ``Class/v_Class_gXX_cYY.avi``, or ``None`` for a name without one."""
    match = _GROUP.search(rel)
    return int(match.group(1)) if match else None


def _val_groups(value) -> frozenset[int]:
    if not isinstance(value, list | tuple) or not all(isinstance(g, int) and not isinstance(g, bool) for g in value):
        raise DatasetError(f"ucf101 option val_groups must be a list of group numbers (e.g. [5, 6]), got {value!r}")
    return frozenset(value)


@DATASETS.register("ucf101")
def ucf101(root: Path, split: str, **options) -> DatasetIndex:
    """Index split ``split`` ("1", "2" or "3") of a UCF101 copy under ``root``.

    ``root`` holds ``UCF-101/`` and ``ucfTrainTestlist/`` side by side (the two official
    downloads unpacked), which is also what ``make-synthetic`` writes. One option of its own:
    ``val_groups``, a list of group numbers (the ``gXX`` of the file names): the train-list
    videos of those groups form the ``val`` split. UCF101 ships no validation split, and clips
    of one group share actors and scenes, so a validation split carved by group is the one that
    does not flatter. ``mirror_pairs``, common to all adapters, overrides the default below.

    The mirror map comes from ``ucfTrainTestlist/mirror_pairs.txt`` when that file exists, else
    it is the identity.
    """
    check_options("ucf101", options, ("val_groups",))
    val_groups = _val_groups(options.get("val_groups", ()))
    if split not in SPLIT_IDS:
        raise DatasetError(f"invalid UCF101 split {split!r}; valid splits: {', '.join(SPLIT_IDS)}")
    lists = root / "ucfTrainTestlist"
    if not lists.is_dir():
        raise DatasetError(f"{lists} does not exist: --root must hold UCF-101/ and ucfTrainTestlist/")
    classes = read_class_index(lists / "classInd.txt")
    by_name = {name: i for i, name in enumerate(classes)}
    by_lower = {name.lower(): i for i, name in enumerate(classes)}
    records: list[VideoRecord] = []
    for kind in ("train", "test"):
        path = lists / f"{kind}list0{split}.txt"
        for number, line in read_lines(path):
            parts = line.split()
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            label = by_name.get(folder, by_lower.get(folder.lower()))
            if label is None:
                raise DatasetError(f"{path}:{number}: class folder {folder!r} of {rel!r} is not in classInd.txt")
            if kind == "train":
                if len(parts) != 2 or not parts[1].isdigit():
                    raise DatasetError(f"{path}:{number}: expected '<Class>/<video>.avi <label>', got {line!r}")
                if int(parts[1]) - 1 != label:
                    raise DatasetError(
                        f"{path}:{number}: label {parts[1]} disagrees with the class folder {folder!r} "
                        f"(label {label + 1} in classInd.txt)"
                    )
            kind_of_video = "val" if kind == "train" and val_groups and _group(rel) in val_groups else kind
            records.append(VideoRecord(path=f"UCF-101/{rel}", label=label, split=kind_of_video))
    if val_groups and not any(r.split == "val" for r in records):
        raise DatasetError(
            f"val_groups {sorted(val_groups)}: no video of {lists}/trainlist0{split}.txt is in those groups"
        )
    present, missing = keep_existing(root, records, lists)
    pairs = lists / MIRROR_PAIRS
    mirror = read_mirror_pairs(pairs, classes) if pairs.is_file() else ()
    return DatasetIndex("ucf101", root, split, "classification", classes, tuple(present), tuple(missing), mirror)

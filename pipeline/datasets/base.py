"""What every dataset adapter returns: an ordered class list and one record per video.

Adapters only read annotation files and check which videos exist; they never decode video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError

SPLITS = ("train", "val", "test")
TASKS = ("classification", "regression")


class DatasetError(UserError):
    """The dataset on disk does not match what the adapter expects; the message names the path."""


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    Attributes:
        path: POSIX path relative to the dataset root (what the cache stores).
        label: index into :attr:`DatasetIndex.classes`, or -1 for regression / unlabelled.
        score: regression target (e.g. an action-quality score), NaN for classification.
        split: ``"train"``, ``"val"`` or ``"test"``.
    """

    path: str
    label: int = -1
    score: float = math.nan
    split: str = "train"


@dataclass(frozen=True)
class DatasetIndex:
    """An adapter's answer: the videos of one split id of one dataset.

    Attributes:
        name: registry name of the adapter (``"ucf101"``...).
        root: the dataset root the record paths are relative to.
        split: the dataset's split id (``"1"`` for UCF101 split 1, a CSV name for Kinetics...).
        task: ``"classification"`` or ``"regression"``.
        classes: class names in label order (empty for regression).
        videos: records in a stable order (the order of the annotation files).
        missing: paths the annotations list but the disk lacks (counted and warned, not fatal).
        mirror: how a horizontal mirror maps labels (classification only): ``mirror[label]`` is
            the label of the mirrored video. Empty means identity, which is right for real
            UCF101, HMDB51 and Kinetics (a mirrored action is still that action); a dataset with
            handed classes (``SwipeLeft``/``SwipeRight``) swaps them. Always empty for regression.
            Set from a mirror-pairs file (:func:`pipeline.datasets._common.read_mirror_pairs`).
    """

    name: str
    root: Path
    split: str
    task: str
    classes: tuple[str, ...]
    videos: tuple[VideoRecord, ...]
    missing: tuple[str, ...] = field(default=())
    mirror: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        assert self.task in TASKS, self.task
        assert all(v.split in SPLITS for v in self.videos)
        if not self.mirror:
            return
        # Checked here, not only in the file parser, since any adapter may set the map.
        n = len(self.classes)
        if self.task != "classification" or len(self.mirror) != n:
            raise DatasetError(
                f"dataset {self.name!r}: a mirror map needs one entry per class ({n}), got {len(self.mirror)}"
            )
        names = self.classes
        for label, image in enumerate(self.mirror):
            if not 0 <= image < n:
                raise DatasetError(f"dataset {self.name!r}: mirror[{label}] = {image} is not a label in 0..{n - 1}")
            if self.mirror[image] != label:
                raise DatasetError(
                    f"dataset {self.name!r}: the mirror map is not an involution: {names[label]!r} mirrors to "
                    f"{names[image]!r}, which mirrors to {names[self.mirror[image]]!r} (twice must give the original)"
                )

    def mirror_map(self) -> tuple[int, ...]:
        """The full label map of a horizontal mirror: ``mirror`` if set, else the identity."""
        return self.mirror or tuple(range(len(self.classes)))

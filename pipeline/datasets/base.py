"""What every dataset adapter returns: an ordered class list and one record per video.

Adapters only read annotation files and check which videos exist; they never decode video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")
TASKS = ("classification", "regression")


class DatasetError(ValueError):
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
    """

    name: str
    root: Path
    split: str
    task: str
    classes: tuple[str, ...]
    videos: tuple[VideoRecord, ...]
    missing: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        assert self.task in TASKS, self.task
        assert all(v.split in SPLITS for v in self.videos)

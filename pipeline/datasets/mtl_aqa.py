"""MTL-AQA (Parmar & Morris, CVPR 2019): 1412 dives scored by judges, one regression target per clip.

The release (github.com/ParitoshParmar/MTL-AQA, ``MTL-AQA_dataset_release/Ready_2_Use/
MTL-AQA_split_0_data/``) ships pickles, written by Python 3 (protocol 3) from plain builtins:

* ``final_annotations_dict.pkl``: ``{(event, clip): {...}}`` with int keys (event = the source
  video's number, 1-26; clip = the dive's number in it) and fields ``primary_view``,
  ``start_frame``, ``end_frame``, ``position``, ``difficulty`` (float), ``armstand``,
  ``rotation_type``, ``ss_no``, ``tw_no``, ``final_score`` (float, 0-104.5). Re-packaged copies add
  fields, some as numpy arrays (MUSDL's ``augmented_final_annotations_dict.pkl`` adds
  ``judge_scores``; CoRe's ``final_annotations_dict_with_dive_number.pkl`` adds ``dive_number``).
* ``train_split_0.pkl`` / ``test_split_0.pkl``: lists of ``(event, clip)`` keys (1059 / 353),
  the release's only split, id ``"0"``.
* ``../smaller_training_sets/size_{140,280,450}/train_split_0.pkl``: smaller training lists,
  tested on the main split's test list (option ``train_size``).

The pickles are read by a restricted unpickler (builtins and numpy arrays/scalars only), never
by ``pickle.load``: an annotation file must not be able to run code.

Videos: the release links whole YouTube event videos; its own recipe (``frame_extractor.sh``,
``dataloaders/dataloader_C3DAVG.py``) extracts every frame of an event to
``whole_videos_frames/<event:02d>/%06d.jpg`` and takes a dive as the 103 frames ending at
``end_frame``. A record here is one clip, so this adapter expects one frame folder (or video
file) per clip; by default ``frames/<event:02d>_<clip:02d>/``, the layout of MUSDL's prepared
frames (Tang et al., CVPR 2020, github.com/nzl-thu/MUSDL ``MTL-AQA/dataset.py``). Cut the whole
event frames into such folders first if you followed the release's recipe.
"""

from __future__ import annotations

import importlib
import math
import pickle
from collections import Counter
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.datasets._common import VIDEO_SUFFIXES, check_options, keep_existing, keep_frame_folders
from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS

SPLIT_IDS = ("0",)
TARGETS = ("final", "execution")
DEFAULT_PATTERN = "frames/{event:02d}_{clip:02d}"
#: Where the pickles sit in the layouts people use: MUSDL/CoRe ``info/``, the release's own tree.
ANNOTATION_DIRS = (
    "info",
    "Ready_2_Use/MTL-AQA_split_0_data",
    "MTL-AQA_dataset_release/Ready_2_Use/MTL-AQA_split_0_data",
    ".",
)
MAIN_SPLIT_DIR = "MTL-AQA_split_0_data"
#: The release's smaller training sets (``size_140`` ...), beside ``MTL-AQA_split_0_data/``.
SMALLER_SETS = "smaller_training_sets"
#: The release's annotation file, then the re-packaged copies (same keys, extra fields).
ANNOTATION_FILES = (
    "final_annotations_dict.pkl",
    "augmented_final_annotations_dict.pkl",
    "final_annotations_dict_with_dive_number.pkl",
)


class _AnnotationUnpickler(pickle.Unpickler):
    """Builds only builtin containers, numbers and strings, numpy arrays and numpy scalars.

    Protocol-2+ pickles of dicts, lists, tuples, ints, floats and strings need no global at all;
    numpy arrays need ``ndarray``, ``dtype`` and ``_reconstruct``, numpy scalars need ``scalar``.
    Anything else (which is how a pickle runs code) is refused with the name it asked for.
    """

    _BUILTINS: ClassVar[dict[str, type]] = {"set": set, "frozenset": frozenset}

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            return self._BUILTINS[name]
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            # numpy 2 moved numpy.core to numpy._core; files name whichever wrote them.
            for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except ImportError:
                    continue
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only builtins and numpy data are allowed)")


def load_pickle(path: Path) -> Any:
    """Load an annotation pickle with :class:`_AnnotationUnpickler`.

    Raises:
        DatasetError: the file is missing, not a pickle, or asks for a class outside the allowed set.
    """
    if not path.is_file():
        raise DatasetError(f"annotation file {path} does not exist")
    try:
        with open(path, "rb") as fh:
            # latin1: numpy arrays pickled by Python 2 carry their bytes as py2 str.
            return _AnnotationUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise DatasetError(f"{path} is not a readable annotation pickle: {err}") from err


def _is_key(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, Integral) and not isinstance(v, bool) for v in value)
    )


def _key(value: Any) -> tuple[int, int]:
    return int(value[0]), int(value[1])


def _number(annotation: Any, field: str, key: tuple[int, int], path: Path) -> float:
    if not isinstance(annotation, dict) or field not in annotation:
        raise DatasetError(f"{path}: clip {key} has no {field!r} field")
    value = annotation[field]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise DatasetError(f"{path}: clip {key} has {field} {value!r}, not a finite number")
    return float(value)


def read_annotations(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """``{(event, clip): fields}`` from ``final_annotations_dict.pkl`` (or a re-packaged copy)."""
    data = load_pickle(path)
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{path}: expected a non-empty dict keyed by (event, clip), got {type(data).__name__}")
    bad = next((k for k in data if not _is_key(k)), None)
    if bad is not None:
        raise DatasetError(f"{path}: expected (event, clip) integer keys, found {bad!r}")
    return {_key(k): v for k, v in data.items()}


def read_split(path: Path, annotations: dict[tuple[int, int], Any], annotations_path: Path) -> list[tuple[int, int]]:
    """The ``(event, clip)`` keys of ``train_split_<id>.pkl`` or ``test_split_<id>.pkl``, in file order."""
    data = load_pickle(path)
    if not isinstance(data, (list, tuple)):
        raise DatasetError(f"{path}: expected a list of (event, clip) keys, got {type(data).__name__}")
    keys = []
    for item in data:
        if not _is_key(item):
            raise DatasetError(f"{path}: expected (event, clip) integer pairs, found {item!r}")
        key = _key(item)
        if key not in annotations:
            raise DatasetError(f"{path}: clip {key} is not in {annotations_path}")
        keys.append(key)
    duplicates = sorted(k for k, n in Counter(keys).items() if n > 1)
    if duplicates:
        raise DatasetError(f"{path}: clips listed twice: {duplicates[:5]}")
    return keys


def _find_annotations_dir(root: Path, option: str | None, split: str) -> Path:
    wanted = f"train_split_{split}.pkl"
    if option is not None:
        folder = Path(option) if Path(option).is_absolute() else root / option
        if not (folder / wanted).is_file():
            raise DatasetError(f"annotations_dir {folder} has no {wanted}")
        return folder
    for candidate in ANNOTATION_DIRS:
        if (root / candidate / wanted).is_file():
            return root / candidate
    raise DatasetError(
        f"no MTL-AQA {wanted} under {root} (looked in {', '.join(ANNOTATION_DIRS)}); "
        "set dataset option annotations_dir to the folder holding the Ready_2_Use pickles"
    )


def _smaller_set(folder: Path, size: str, split: str) -> Path:
    """The folder of the release's smaller training set ``size`` (``Ready_2_Use/smaller_training_sets/size_<N>/``).

    The release ships it beside ``MTL-AQA_split_0_data/`` with only a training list (and, for
    some sizes, the same annotations again); its test list is the main split's. ``folder`` is
    the main split's folder, or the smaller set's own when ``annotations_dir`` names it.
    """
    wanted = f"train_split_{split}.pkl"
    name = size if size.startswith("size_") else f"size_{size}"
    for candidate in (folder.parent / SMALLER_SETS / name, folder):
        if candidate.name == name and (candidate / wanted).is_file():
            return candidate
    sets = folder.parent / SMALLER_SETS
    found = sorted(d.name for d in sets.glob("size_*") if (d / wanted).is_file()) if sets.is_dir() else []
    raise DatasetError(
        f"no MTL-AQA smaller training set {name!r} with {wanted} in {sets}; "
        + (f"found: {', '.join(found)}" if found else "the release ships size_140, size_280 and size_450 there")
    )


def _main_split(folder: Path, split: str) -> Path:
    """The folder holding the main split's test list: ``folder``, or for a smaller set named
    directly by ``annotations_dir``, ``MTL-AQA_split_0_data/`` two levels up."""
    wanted = f"test_split_{split}.pkl"
    if folder.parent.name == SMALLER_SETS and not (folder / wanted).is_file():
        return folder.parent.parent / MAIN_SPLIT_DIR
    return folder


def _clip_path(pattern: str, key: tuple[int, int]) -> str:
    try:
        rel = pattern.format(event=key[0], clip=key[1])
    except (KeyError, IndexError, ValueError) as err:
        raise DatasetError(
            f"invalid MTL-AQA pattern {pattern!r} ({err!r}); use the fields {{event}} and {{clip}}, "
            "e.g. 'frames/{event:02d}_{clip:02d}' or 'videos/{event:02d}_{clip:02d}.mp4'"
        ) from None
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise DatasetError(f"MTL-AQA pattern {pattern!r} must give paths inside the root, got {rel!r}")
    return Path(rel).as_posix()


@DATASETS.register("mtl_aqa")
def mtl_aqa(root: Path, split: str, **options) -> DatasetIndex:
    """Index MTL-AQA split ``"0"`` as a regression task on each dive's score.

    Options:
        pattern: where clip ``(event, clip)`` lives, relative to ``root``, with the format fields
            ``{event}`` and ``{clip}``: a frame folder (default ``frames/{event:02d}_{clip:02d}``)
            or, when it ends in a video suffix, one video file per clip
            (``videos/{event:02d}_{clip:02d}.mp4``).
        target: ``final`` (default): the final score as judged (execution x difficulty);
            ``execution``: final score / difficulty, the sum of the three counted judges' scores,
            which removes the dive's announced difficulty from the target.
        annotations_dir: folder of the pickles, relative to ``root`` or absolute. By default the
            first of ``info/``, ``Ready_2_Use/MTL-AQA_split_0_data/``,
            ``MTL-AQA_dataset_release/Ready_2_Use/MTL-AQA_split_0_data/``, ``root`` holding
            ``train_split_0.pkl``.
        annotations: annotation file name in that folder; by default the first present of
            ``final_annotations_dict.pkl``, ``augmented_final_annotations_dict.pkl``,
            ``final_annotations_dict_with_dive_number.pkl``.
        train_size: one of the release's smaller training sets (``140``, ``280``, ``450``, or
            ``size_140`` ...): its ``train_split_0.pkl`` from ``smaller_training_sets/size_<N>/``
            beside the main split's folder, tested on the main split's ``test_split_0.pkl``, as
            the release prescribes. An ``annotations_dir`` naming a smaller set's folder itself
            works too (its test list is then read from ``MTL-AQA_split_0_data/``).
    """
    check_options("mtl_aqa", options, ("pattern", "target", "annotations_dir", "annotations", "train_size"))
    if split not in SPLIT_IDS:
        raise DatasetError(f"invalid MTL-AQA split {split!r}; valid splits: {', '.join(SPLIT_IDS)}")
    target = str(options.get("target", "final"))
    if target not in TARGETS:
        raise DatasetError(f"invalid MTL-AQA target {target!r}; valid targets: {', '.join(TARGETS)}")
    pattern = str(options.get("pattern", DEFAULT_PATTERN))
    folder = _find_annotations_dir(root, options.get("annotations_dir"), split)
    lists = {"train": folder, "test": _main_split(folder, split)}
    if options.get("train_size") is not None:
        lists["train"] = _smaller_set(folder, str(options["train_size"]), split)
    folder = lists["test"]  # the main split's folder: its annotations cover both lists
    if options.get("annotations"):
        annotations_path = folder / str(options["annotations"])
    else:
        annotations_path = next(
            (folder / name for name in ANNOTATION_FILES if (folder / name).is_file()), folder / ANNOTATION_FILES[0]
        )
    annotations = read_annotations(annotations_path)

    records: list[VideoRecord] = []
    paths: dict[str, tuple[int, int]] = {}
    for kind in ("train", "test"):
        split_path = lists[kind] / f"{kind}_split_{split}.pkl"
        keys = read_split(split_path, annotations, annotations_path)
        for key in keys:
            rel = _clip_path(pattern, key)
            if paths.setdefault(rel, key) != key:
                raise DatasetError(f"MTL-AQA pattern {pattern!r} gives clips {paths[rel]} and {key} the same path")
            score = _number(annotations[key], "final_score", key, annotations_path)
            if target == "execution":
                difficulty = _number(annotations[key], "difficulty", key, annotations_path)
                if difficulty <= 0:
                    raise DatasetError(f"{annotations_path}: clip {key} has difficulty {difficulty}, not positive")
                score /= difficulty
            records.append(VideoRecord(path=rel, score=score, split=kind))
    overlap = sorted({r.path for r in records if r.split == "train"} & {r.path for r in records if r.split == "test"})
    if overlap:
        raise DatasetError(f"{folder}: clips in both train and test splits: {overlap[:5]}")

    if Path(pattern).suffix.lower() in VIDEO_SUFFIXES:  # one video file per clip
        present, missing = keep_existing(root, records, folder)
    else:
        present, missing = keep_frame_folders(root, records, folder)
    return DatasetIndex("mtl_aqa", root, split, "regression", (), tuple(present), tuple(missing))

"""YUP++ dynamic scenes (Feichtenhofer, Pinz & Wildes, CVPR 2017): 20 classes, static and moving camera.

Layout of ``YUP++.zip`` (vision.eecs.yorku.ca/WebShare/YUP++.zip) unpacked in ``root``, as the
authors' code reads it (github.com/feichtenhofer/temporal-resnet ``cnn_yup2_setup_data_imgs.m``)::

    camera_stationary/<Class>/<video>.mp4    the static-camera subset, 30 videos per class
    camera_moving/<Class>/<video>.mp4        the moving-camera subset, 30 videos per class
    10_90_randsplit_1.txt                    the standard split

Each line of the split file is ``<video> <set>``: the file name without ``.mp4`` (it starts with
``<Class>_``), then ``static_train``, ``static_test``, ``moving_train`` or ``moving_test``. It is
the authors' 10/90 split: per class and subset, 3 videos train and 27 test (120 train, 1080 test
in all), drawn once at random (``randSplit = 1``: MATLAB ``rng(1)``, in ``cnn_yup2_tres.m``) and
saved to that file, so we read the file and never redraw it. The authors' code trains and tests
on the static subset, the moving one, or both mixed (its ``nSplit`` 1, 2, 3: the ``subset``
option here).

Classes are the class folders, sorted (the authors' ``dir`` order), the same for every subset so
labels agree between static, moving and both. The release's video names are
``<Class>_<static|moving>_cam_<NN>``, so the split file names every class too: a copy that lacks
some class folders keeps the full class list (the labels stay those of a complete copy) and
counts those videos as missing, as the other adapters do.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pipeline.datasets._common import check_options, keep_existing, keep_frame_folders, read_lines
from pipeline.datasets.base import DatasetError, DatasetIndex, VideoRecord
from pipeline.datasets.registry import DATASETS

logger = logging.getLogger(__name__)

#: subset option -> the split-file prefixes it keeps.
SUBSETS = {"static": ("static",), "moving": ("moving",), "both": ("static", "moving")}
#: split-file prefix -> subset folder in the release.
SUBSET_DIRS = {"static": "camera_stationary", "moving": "camera_moving"}
SPLIT_FILE = "10_90_randsplit_{split}.txt"
VIDEO_SUFFIX = ".mp4"


def _split_file(root: Path, split: str, option: str | None) -> Path:
    if option is not None:
        path = Path(option) if Path(option).is_absolute() else root / option
        if not path.is_file():
            raise DatasetError(f"YUP++ split file {path} does not exist")
        return path
    path = root / SPLIT_FILE.format(split=split)
    if not path.is_file():
        found = sorted(p.name for p in root.glob(SPLIT_FILE.format(split="*")))
        hint = f"split files here: {', '.join(found)}" if found else "it ships in YUP++.zip next to camera_stationary/"
        raise DatasetError(f"YUP++ split file {path} does not exist ({hint}); or set dataset option split_file")
    return path


#: A video name of the release, ``<Class>_<static|moving>_cam_<NN>``: group 1 is its class.
_RELEASE_NAME = re.compile(r"^(.+)_(?:static|moving)_cam_\d+$")


def _classes(root: Path) -> tuple[str, ...]:
    folders = [root / d for d in SUBSET_DIRS.values() if (root / d).is_dir()]
    if not folders:
        raise DatasetError(
            f"{root} holds neither camera_stationary/ nor camera_moving/: --root must be where YUP++.zip was unpacked"
        )
    classes = sorted({d.name for f in folders for d in f.iterdir() if d.is_dir() and not d.name.startswith(".")})
    if not classes:
        raise DatasetError(f"no class folders in {', '.join(str(f) for f in folders)}")
    return tuple(classes)


@DATASETS.register("yupp")
def yupp(root: Path, split: str, **options) -> DatasetIndex:
    """Index YUP++ with the authors' split file ``10_90_randsplit_<split>.txt`` (the release has ``"1"``).

    Options:
        subset: ``both`` (default; the paper's mixed setting), ``static`` (camera_stationary only)
            or ``moving`` (camera_moving only).
        split_file: a split file in the release's format to use instead, relative to ``root`` or
            absolute.
        frames_dir: read frame folders ``<frames_dir>/<video>/`` instead of the mp4 files (the
            authors' ``jpegs_256``, YUP++_jpegs_256.zip), relative to ``root``.
    """
    check_options("yupp", options, ("subset", "split_file", "frames_dir"))
    subset = str(options.get("subset", "both"))
    if subset not in SUBSETS:
        raise DatasetError(f"invalid YUP++ subset {subset!r}; valid subsets: {', '.join(SUBSETS)}")
    frames_dir = options.get("frames_dir")
    if frames_dir is not None and (Path(frames_dir).is_absolute() or ".." in Path(frames_dir).parts):
        raise DatasetError(f"YUP++ frames_dir {frames_dir!r} must be a folder inside the root")
    folders = set(_classes(root))
    path = _split_file(root, split, options.get("split_file"))
    names = [line.split()[0] for _, line in read_lines(path) if line.split()]
    named = {m[1] for name in names if (m := _RELEASE_NAME.match(name.removesuffix(VIDEO_SUFFIX)))}
    if named - folders:
        logger.warning(
            "%s names %d classes without a folder in %s (%s): their videos are counted as missing",
            path,
            len(named - folders),
            root,
            ", ".join(sorted(named - folders)[:5]),
        )
    classes = tuple(sorted(folders | named))
    # Longest name first: should a class name hold "_" and extend another's (Fire, Fire_Forest), it wins.
    by_prefix = sorted(classes, key=len, reverse=True)

    records: list[VideoRecord] = []
    seen: set[str] = set()
    for number, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or parts[1].count("_") != 1 or parts[1].split("_")[0] not in SUBSET_DIRS:
            raise DatasetError(f"{path}:{number}: expected '<video> <static|moving>_<train|test>', got {line!r}")
        name = parts[0].removesuffix(VIDEO_SUFFIX)
        camera, kind = parts[1].split("_")
        if kind not in ("train", "test"):
            raise DatasetError(f"{path}:{number}: set {parts[1]!r} is not <static|moving>_<train|test>")
        if name in seen:
            raise DatasetError(f"{path}:{number}: video {name!r} is listed twice")
        seen.add(name)
        label = next((classes.index(c) for c in by_prefix if name.startswith(f"{c}_")), None)
        if label is None:
            raise DatasetError(f"{path}:{number}: video {name!r} does not start with a class folder name + '_'")
        if camera not in SUBSETS[subset]:
            continue
        if frames_dir is None:
            rel = f"{SUBSET_DIRS[camera]}/{classes[label]}/{name}{VIDEO_SUFFIX}"
        else:
            rel = f"{Path(frames_dir).as_posix()}/{name}"
        records.append(VideoRecord(path=rel, label=label, split=kind))
    if not records:
        raise DatasetError(f"{path} lists no {subset} videos")

    if frames_dir is None:
        present, missing = keep_existing(root, records, path)
    else:
        present, missing = keep_frame_folders(root, records, path)
    return DatasetIndex("yupp", root, split, "classification", classes, tuple(present), tuple(missing))

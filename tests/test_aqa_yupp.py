"""The mtl_aqa and yupp adapters on tiny trees in each release's real layout."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline.datasets.mtl_aqa
import pipeline.datasets.yupp  # noqa: F401  (registers the adapters even without auto-discovery)
from pipeline.datasets import DatasetError, load_dataset

# --------------------------------------------------------------------------------------------- MTL-AQA

READY = "MTL-AQA_dataset_release/Ready_2_Use/MTL-AQA_split_0_data"


def annotation(start: int, end: int, difficulty: float, score: float) -> dict:
    """One value of final_annotations_dict.pkl, fields in the release's order and types."""
    return {
        "primary_view": 0,
        "start_frame": start,
        "end_frame": end,
        "position": 2,
        "difficulty": difficulty,
        "armstand": 0,
        "rotation_type": 2,
        "ss_no": 7,
        "tw_no": 0,
        "final_score": score,
    }


ANNOTATIONS = {
    (1, 1): annotation(7377, 7462, 3.2, 88.0),  # the release's first entry
    (1, 2): annotation(7600, 7690, 3.2, 86.4),
    (4, 105): annotation(1060, 1210, 2.0, 54.0),
    (26, 4): annotation(291897, 291971, 3.6, 64.8),
}
TRAIN = [(4, 105), (1, 1)]  # file order, not sorted: the release's lists are shuffled
TEST = [(26, 4), (1, 2)]


def dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=3))  # the release's files are protocol 3


def write_frames(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(folder / f"{i + 1:05d}.png")


@pytest.fixture
def mtl(tmp_path: Path) -> Path:
    dump(tmp_path / READY / "final_annotations_dict.pkl", ANNOTATIONS)
    dump(tmp_path / READY / "train_split_0.pkl", TRAIN)
    dump(tmp_path / READY / "test_split_0.pkl", TEST)
    for event, clip in [(4, 105), (1, 1), (26, 4)]:  # (1, 2) is missing
        write_frames(tmp_path / f"frames/{event:02d}_{clip:02d}")
    return tmp_path


def test_mtl_aqa_records_in_split_order_with_final_scores(mtl: Path) -> None:
    index = load_dataset("mtl_aqa", mtl, split="0")
    assert index.task == "regression" and index.classes == () and index.split == "0"
    assert [(v.path, v.split, v.score, v.label) for v in index.videos] == [
        ("frames/04_105", "train", 54.0, -1),
        ("frames/01_01", "train", 88.0, -1),
        ("frames/26_04", "test", 64.8, -1),
    ]
    assert index.missing == ("frames/01_02",)


def test_mtl_aqa_execution_target_divides_by_difficulty(mtl: Path) -> None:
    index = load_dataset("mtl_aqa", mtl, split="0", target="execution")
    assert [v.score for v in index.videos] == pytest.approx([27.0, 27.5, 18.0])


def test_mtl_aqa_video_files_and_a_custom_pattern(mtl: Path, caplog: pytest.LogCaptureFixture) -> None:
    for event, clip in TRAIN + TEST:
        (mtl / f"clips/{event}-{clip}.avi").parent.mkdir(exist_ok=True)
        (mtl / f"clips/{event}-{clip}.avi").touch()
    index = load_dataset("mtl_aqa", mtl, split="0", pattern="clips/{event}-{clip}.avi")
    assert [v.path for v in index.videos] == ["clips/4-105.avi", "clips/1-1.avi", "clips/26-4.avi", "clips/1-2.avi"]
    assert index.missing == ()
    # a clip folder without frames is kept (extraction records it as failed, with the reason) and warned about
    (mtl / "frames/01_02").mkdir()
    with caplog.at_level(logging.WARNING):
        index = load_dataset("mtl_aqa", mtl, split="0")
    assert index.missing == () and index.videos[-1].path == "frames/01_02"
    assert "frames/01_02 (no frame images (.jpg, .jpeg, .png) in this folder)" in caplog.text


def test_mtl_aqa_reads_numpy_fields_of_repackaged_annotations(tmp_path: Path) -> None:
    # MUSDL's info/augmented_final_annotations_dict.pkl adds judge_scores as float64 arrays
    augmented = {
        k: {**v, "judge_scores": np.array([9.5, 9.0, 9.5, 9.0, 8.5, 9.5, 8.5])} for k, v in ANNOTATIONS.items()
    }
    augmented[(1, 1)]["final_score"] = np.float64(88.0)  # numpy scalars are allowed too
    dump(tmp_path / "info/augmented_final_annotations_dict.pkl", augmented)
    dump(tmp_path / "info/train_split_0.pkl", TRAIN)
    dump(tmp_path / "info/test_split_0.pkl", TEST)
    write_frames(tmp_path / "frames/01_01")
    index = load_dataset("mtl_aqa", tmp_path, split="0")
    assert [(v.path, v.score) for v in index.videos] == [("frames/01_01", 88.0)]
    assert len(index.missing) == 3


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_mtl_aqa_refuses_pickles_that_would_run_code(mtl: Path, capsys: pytest.CaptureFixture) -> None:
    path = mtl / READY / "final_annotations_dict.pkl"
    dump(path, {(1, 1): Exploit()})
    with pytest.raises(DatasetError, match=r"refusing to load builtins\.print") as info:
        load_dataset("mtl_aqa", mtl, split="0")
    assert str(path) in str(info.value)
    assert "never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda root: dump(root / READY / "test_split_0.pkl", [(9, 9)]), r"test_split_0\.pkl: clip \(9, 9\) is not in"),
        (lambda root: dump(root / READY / "train_split_0.pkl", ["01_01"]), r"train_split_0\.pkl: expected \(event"),
        (lambda root: (root / READY / "test_split_0.pkl").write_bytes(b"junk"), r"test_split_0\.pkl is not a readable"),
        (lambda root: dump(root / READY / "test_split_0.pkl", TRAIN[:1]), r"in both train and test"),
        (lambda root: (root / READY / "test_split_0.pkl").unlink(), r"test_split_0\.pkl does not exist"),
        (lambda root: dump(root / READY / "final_annotations_dict.pkl", {"01_01": {}}), r"dict\.pkl: expected \(event"),
        (
            lambda root: dump(
                root / READY / "final_annotations_dict.pkl", {**ANNOTATIONS, (1, 1): {"final_score": "x"}}
            ),
            r"dict\.pkl: clip \(1, 1\) has final_score 'x', not a finite number",
        ),
    ],
)
def test_mtl_aqa_errors_name_the_file(mtl: Path, edit, message: str) -> None:
    edit(mtl)
    with pytest.raises(DatasetError, match=message):
        load_dataset("mtl_aqa", mtl, split="0")


def test_mtl_aqa_option_errors(mtl: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="valid splits: 0"):
        load_dataset("mtl_aqa", mtl, split="1")
    with pytest.raises(DatasetError, match="valid targets: final, execution"):
        load_dataset("mtl_aqa", mtl, split="0", target="difficulty")
    with pytest.raises(DatasetError, match="use the fields {event} and {clip}"):
        load_dataset("mtl_aqa", mtl, split="0", pattern="frames/{video}")
    with pytest.raises(DatasetError, match="the same path"):
        load_dataset("mtl_aqa", mtl, split="0", pattern="frames/{event:02d}")
    with pytest.raises(DatasetError, match="none of the 4 frame folders listed in .* is usable under .* \\(4 missing"):
        load_dataset("mtl_aqa", mtl, split="0", pattern="elsewhere/{event}_{clip}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no MTL-AQA train_split_0.pkl under"):
        load_dataset("mtl_aqa", empty, split="0")


SMALLER = "MTL-AQA_dataset_release/Ready_2_Use/smaller_training_sets"


def test_mtl_aqa_smaller_training_sets_test_on_the_main_split(mtl: Path) -> None:
    """The release's layout: size_140 repeats the annotations, size_280 ships only its train list."""
    dump(mtl / SMALLER / "size_140/final_annotations_dict.pkl", ANNOTATIONS)
    dump(mtl / SMALLER / "size_140/train_split_0.pkl", [(1, 1)])
    dump(mtl / SMALLER / "size_280/train_split_0.pkl", [(4, 105)])
    expected = [("frames/01_01", "train"), ("frames/26_04", "test")]
    for options in ({"train_size": 140}, {"train_size": "size_140"}, {"annotations_dir": f"{SMALLER}/size_140"}):
        index = load_dataset("mtl_aqa", mtl, split="0", **options)
        assert [(v.path, v.split) for v in index.videos] == expected, options
        assert index.missing == ("frames/01_02",)
    index = load_dataset("mtl_aqa", mtl, split="0", annotations_dir=f"{SMALLER}/size_280")
    assert [(v.path, v.split) for v in index.videos] == [("frames/04_105", "train"), ("frames/26_04", "test")]
    with pytest.raises(DatasetError, match="smaller training set 'size_450' .* found: size_140, size_280"):
        load_dataset("mtl_aqa", mtl, split="0", train_size=450)


# --------------------------------------------------------------------------------------------- YUP++

YUP_CLASSES = ("Fountain", "Beach", "Fireworks")  # not in sorted order on purpose


@pytest.fixture
def yup(tmp_path: Path) -> Path:
    lines = []
    for cls in YUP_CLASSES:
        for camera, folder in (("static", "camera_stationary"), ("moving", "camera_moving")):
            for i in range(1, 5):  # 1 train and 3 test per class and subset (the real file: 3 and 27)
                name = f"{cls}_{camera}_cam_{i:02d}"
                lines.append(f"{name} {camera}_{'train' if i == 2 else 'test'}")
                if (cls, camera, i) != ("Beach", "moving", 4):  # one listed video is missing
                    (tmp_path / folder / cls).mkdir(parents=True, exist_ok=True)
                    (tmp_path / folder / cls / f"{name}.mp4").touch()
    (tmp_path / "10_90_randsplit_1.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_yupp_both_subsets_with_the_authors_split(yup: Path) -> None:
    index = load_dataset("yupp", yup, split="1")
    assert index.task == "classification" and index.classes == ("Beach", "Fireworks", "Fountain")
    assert len(index.videos) == 23 and index.missing == ("camera_moving/Beach/Beach_moving_cam_04.mp4",)
    first = index.videos[0]
    assert (first.path, first.label, first.split) == (
        "camera_stationary/Fountain/Fountain_static_cam_01.mp4",
        2,
        "test",
    )
    train = [v.path for v in index.videos if v.split == "train"]
    assert len(train) == 6 and "camera_moving/Beach/Beach_moving_cam_02.mp4" in train
    assert all(index.classes[v.label] == v.path.split("/")[1] for v in index.videos)


@pytest.mark.parametrize(
    ("subset", "folder", "count"), [("static", "camera_stationary", 12), ("moving", "camera_moving", 11)]
)
def test_yupp_one_subset_keeps_the_labels(yup: Path, subset: str, folder: str, count: int) -> None:
    index = load_dataset("yupp", yup, split="1", subset=subset)
    assert len(index.videos) == count and all(v.path.startswith(folder + "/") for v in index.videos)
    assert index.classes == ("Beach", "Fireworks", "Fountain")


def test_yupp_copy_without_a_class_folder_keeps_the_labels(yup: Path) -> None:
    """A class folder gone from both subsets: its videos count as missing, every label stays."""
    import shutil

    full = load_dataset("yupp", yup, split="1")
    for folder in ("camera_stationary", "camera_moving"):
        shutil.rmtree(yup / folder / "Fireworks")
    index = load_dataset("yupp", yup, split="1")
    assert index.classes == full.classes == ("Beach", "Fireworks", "Fountain")
    assert [v for v in full.videos if "Fireworks" not in v.path] == list(index.videos)
    assert len(index.missing) == len(full.missing) + 8


def test_yupp_frame_folders(yup: Path) -> None:
    for name in ("Beach_static_cam_02", "Beach_moving_cam_02"):
        write_frames(yup / "jpegs_256" / name)
    index = load_dataset("yupp", yup, split="1", frames_dir="jpegs_256")
    assert [v.path for v in index.videos] == ["jpegs_256/Beach_static_cam_02", "jpegs_256/Beach_moving_cam_02"]
    assert len(index.missing) == 22


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Beach_static_cam_09 static_val", r"10_90_randsplit_1\.txt:25: set 'static_val'"),
        ("Beach_static_cam_09", r"10_90_randsplit_1\.txt:25: expected '<video> <static\|moving>_<train\|test>'"),
        ("Lake01 static_test", r"10_90_randsplit_1\.txt:25: video 'Lake01' does not start"),
        ("Beach_static_cam_01 static_train", r"10_90_randsplit_1\.txt:25: video 'Beach_static_cam_01' is listed twice"),
    ],
)
def test_yupp_bad_split_lines_name_file_and_line(yup: Path, line: str, message: str) -> None:
    with open(yup / "10_90_randsplit_1.txt", "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset("yupp", yup, split="1")


def test_yupp_option_and_layout_errors(yup: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"10_90_randsplit_2\.txt does not exist \(split files here: 10_90_randsplit_1"
    ):
        load_dataset("yupp", yup, split="2")
    with pytest.raises(DatasetError, match="valid subsets: static, moving, both"):
        load_dataset("yupp", yup, split="1", subset="mixed")
    (yup / "mine.txt").write_text("Beach_static_cam_02 static_train\n")
    assert len(load_dataset("yupp", yup, split="x", split_file="mine.txt").videos) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="neither camera_stationary/ nor camera_moving/"):
        load_dataset("yupp", empty, split="1")

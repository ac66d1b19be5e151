"""Every adapter on small trees made on disk (placeholder files: adapters never decode)."""

import dataclasses
import logging
import sys
from pathlib import Path

import pytest

import pipeline.datasets
from pipeline.datasets import DATASETS, DatasetError, DatasetIndex, VideoRecord, dataset_names, load_dataset
from pipeline.datasets._common import read_mirror_pairs
from pipeline.errors import UserError
from pipeline.video import VideoError, probe


def touch(root: Path, *paths: str) -> None:
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()


def write_crlf(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode())


@pytest.fixture
def ucf(tmp_path: Path) -> Path:
    # classInd order (Zoom before Apply) differs from sorted order on purpose.
    write_crlf(tmp_path / "ucfTrainTestlist/classInd.txt", ["1 ZoomIn", "2 ApplyEyeMakeup", "3 HandstandPushups"])
    write_crlf(
        tmp_path / "ucfTrainTestlist/trainlist01.txt",
        [
            "ZoomIn/v_ZoomIn_g08_c01.avi 1",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2",
            "HandstandPushups/v_HandStandPushups_g08_c01.avi 3",
            "ZoomIn/v_ZoomIn_g09_c01.avi 1",  # listed, not on disk
        ],
    )
    write_crlf(
        tmp_path / "ucfTrainTestlist/testlist01.txt",
        ["ZoomIn/v_ZoomIn_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c02.avi"],
    )
    touch(
        tmp_path / "UCF-101",
        "ZoomIn/v_ZoomIn_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "ZoomIn/v_ZoomIn_g01_c01.avi",
        "HandstandPushups/v_HandStandPushups_g01_c02.avi",
    )
    return tmp_path


def test_ucf101_quirks(ucf: Path) -> None:
    index = load_dataset("ucf101", ucf, "1")
    assert index.classes == ("ZoomIn", "ApplyEyeMakeup", "HandstandPushups")
    assert index.task == "classification"
    got = [(v.path, v.label, v.split) for v in index.videos]
    assert got == [
        ("UCF-101/ZoomIn/v_ZoomIn_g08_c01.avi", 0, "train"),
        ("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 1, "train"),
        ("UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi", 2, "train"),
        ("UCF-101/ZoomIn/v_ZoomIn_g01_c01.avi", 0, "test"),
        ("UCF-101/HandstandPushups/v_HandStandPushups_g01_c02.avi", 2, "test"),
    ]
    assert index.missing == ("UCF-101/ZoomIn/v_ZoomIn_g09_c01.avi",)


def test_ucf101_errors(ucf: Path) -> None:
    with pytest.raises(DatasetError, match="invalid UCF101 split '4'; valid splits: 1, 2, 3"):
        load_dataset("ucf101", ucf, "4")
    with pytest.raises(DatasetError, match="testlist02.txt does not exist|trainlist02.txt does not exist"):
        load_dataset("ucf101", ucf, "2")
    with pytest.raises(DatasetError, match="unknown option"):
        load_dataset("ucf101", ucf, "1", color="red")
    write_crlf(ucf / "ucfTrainTestlist/trainlist01.txt", ["ZoomIn/v_ZoomIn_g08_c01.avi 2"])
    with pytest.raises(DatasetError, match=r"trainlist01.txt:1: label 2 disagrees with the class folder 'ZoomIn'"):
        load_dataset("ucf101", ucf, "1")
    (ucf / "ucfTrainTestlist/classInd.txt").unlink()
    with pytest.raises(DatasetError, match="classInd.txt does not exist"):
        load_dataset("ucf101", ucf, "1")


def test_ucf101_all_missing_is_an_error(ucf: Path) -> None:
    import shutil

    shutil.rmtree(ucf / "UCF-101")
    with pytest.raises(DatasetError, match="none of the 6 videos"):
        load_dataset("ucf101", ucf, "1")


def test_hmdb51(tmp_path: Path) -> None:
    splits = tmp_path / "testTrainMulti_7030_splits"
    write_crlf(splits / "wave_test_split1.txt", ["a.avi 1", "b.avi 2", "c.avi 0"])
    write_crlf(splits / "climb_test_split1.txt", ["d.avi 2", "e.avi 1"])
    touch(tmp_path, "wave/a.avi", "wave/b.avi", "wave/c.avi", "climb/d.avi")
    index = load_dataset("hmdb51", tmp_path, "1")
    assert index.classes == ("climb", "wave")
    assert [(v.path, v.label, v.split) for v in index.videos] == [
        ("climb/d.avi", 0, "test"),
        ("wave/a.avi", 1, "train"),
        ("wave/b.avi", 1, "test"),
    ]
    assert index.missing == ("climb/e.avi",)
    with pytest.raises(DatasetError, match="no HMDB51 split files"):
        load_dataset("hmdb51", tmp_path, "2")
    write_crlf(splits / "wave_test_split3.txt", ["a.avi 7"])
    with pytest.raises(DatasetError, match=r"wave_test_split3.txt:1"):
        load_dataset("hmdb51", tmp_path, "3")


def test_hmdb51_classes_sort_by_name_where_one_prefixes_another(tmp_path: Path) -> None:
    """The release's class pairs climb/climb_stairs, kick/kick_ball, sword/sword_exercise: alphabetical."""
    splits = tmp_path / "testTrainMulti_7030_splits"
    names = ["sword_exercise", "kick_ball", "climb_stairs", "sword", "kick", "climb"]
    for name in names:
        write_crlf(splits / f"{name}_test_split1.txt", ["a.avi 1"])
        touch(tmp_path, f"{name}/a.avi")
    index = load_dataset("hmdb51", tmp_path, "1")
    assert index.classes == tuple(sorted(names))
    assert index.classes[:2] == ("climb", "climb_stairs")
    assert {v.path: v.label for v in index.videos}["kick_ball/a.avi"] == index.classes.index("kick_ball")


def test_kinetics(tmp_path: Path) -> None:
    (tmp_path / "k400.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,AAA,10,20,train,0\n"
        "zumba,BBB,0,10,validate,0\n"
        "abseiling,CCC,5,15,train,0\n"
    )
    touch(tmp_path, "train/abseiling/AAA_000010_000020.mp4", "validate/zumba/BBB_000000_000010.mp4")
    index = load_dataset("kinetics", tmp_path, "400")
    assert index.classes == ("abseiling", "zumba")
    assert [(v.path, v.label, v.split) for v in index.videos] == [
        ("train/abseiling/AAA_000010_000020.mp4", 0, "train"),
        ("validate/zumba/BBB_000000_000010.mp4", 1, "val"),
    ]
    assert index.missing == ("train/abseiling/CCC_000005_000015.mp4",)
    (tmp_path / "other.csv").write_text("x\n")
    assert load_dataset("kinetics", tmp_path, "400").videos == index.videos  # a CSV of something else: ignored
    with pytest.raises(DatasetError, match="missing column"):
        load_dataset("kinetics", tmp_path, "400", annotations="other.csv")


def test_kinetics_as_released_and_downloaded(tmp_path: Path) -> None:
    """One CSV per split; 'validate' rows whose videos sit in val/; a test CSV without labels;
    flat split folders (the CVDF tarballs) beside label folders whose names use underscores."""
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "train.csv").write_text(header + '"playing guitar",AAA,10,20,train\nabseiling,BBB,0,10,train\n')
    (tmp_path / "validate.csv").write_text(header + "abseiling,CCC,5,15,validate\n")
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\nDDD,0,10,test\n")
    touch(tmp_path, "train/playing_guitar/AAA_000010_000020.mp4", "train/abseiling/BBB_000000_000010.mp4")
    touch(tmp_path, "val/CCC_000005_000015.mp4", "test/DDD_000000_000010.mp4")
    index = load_dataset("kinetics", tmp_path, "400")
    assert index.classes == ("abseiling", "playing guitar")
    assert sorted((v.path, v.label, v.split) for v in index.videos) == [
        ("train/abseiling/BBB_000000_000010.mp4", 0, "train"),
        ("train/playing_guitar/AAA_000010_000020.mp4", 1, "train"),
        ("val/CCC_000005_000015.mp4", 0, "val"),
    ]
    assert index.missing == ()


def test_folder_split_is_seeded_and_stratified(tmp_path: Path) -> None:
    touch(tmp_path, *[f"{c}/{i}.mp4" for c in ("run", "jump") for i in range(10)], "run/notes.txt")
    a = load_dataset("folder", tmp_path, "1", test_fraction=0.3, seed=1)
    b = load_dataset("folder", tmp_path, "1", test_fraction=0.3, seed=1)
    c = load_dataset("folder", tmp_path, "1", test_fraction=0.3, seed=2)
    assert a.videos == b.videos and a.videos != c.videos
    assert a.classes == ("jump", "run") and len(a.videos) == 20
    for label in (0, 1):
        assert sum(v.split == "test" for v in a.videos if v.label == label) == 3
    (tmp_path / "split.csv").write_text("path,split\nrun/0.mp4,test\njump/1.mp4,train\n")
    d = load_dataset("folder", tmp_path, "1", split_file="split.csv")
    assert [(v.path, v.split) for v in d.videos] == [("jump/1.mp4", "train"), ("run/0.mp4", "test")]


def test_manifest_regression_and_classification(tmp_path: Path) -> None:
    touch(tmp_path, "v/a.mp4", "v/b.mp4", "v/c.mp4")
    (tmp_path / "manifest.csv").write_text(
        "path,score,split\nv/a.mp4,81.5,train\nv/b.mp4,40,test\nv/gone.mp4,1,train\n"
    )
    index = load_dataset("manifest", tmp_path, "1")
    assert index.task == "regression" and index.classes == ()
    assert [(v.path, v.score, v.label, v.split) for v in index.videos] == [
        ("v/a.mp4", 81.5, -1, "train"),
        ("v/b.mp4", 40.0, -1, "test"),
    ]
    assert index.missing == ("v/gone.mp4",)
    (tmp_path / "cls.csv").write_text("path,label,split\nv/a.mp4,dive,train\nv/c.mp4,bike,val\n")
    index = load_dataset("manifest", tmp_path, "1", manifest="cls.csv")
    assert index.classes == ("bike", "dive")
    assert [(v.label, v.split) for v in index.videos] == [(1, "train"), (0, "val")]
    (tmp_path / "bad.csv").write_text("path,score,split\nv/a.mp4,high,train\n")
    with pytest.raises(DatasetError, match=r"bad.csv:2: score 'high' is not a number"):
        load_dataset("manifest", tmp_path, "1", manifest="bad.csv")


def test_unknown_dataset_and_missing_root(tmp_path: Path) -> None:
    # Other adapters may join the package: the message lists whatever is registered.
    with pytest.raises(UserError, match=f"unknown dataset 'ucf'; valid names: {', '.join(dataset_names())}$"):
        load_dataset("ucf", tmp_path, "1")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("ucf101", tmp_path / "nowhere", "1")


# --- odd entries: failed videos, not aborted runs ---------------------------------------------------


def test_folder_lists_directories_and_dangling_links_as_videos(tmp_path: Path, caplog) -> None:
    touch(tmp_path, "run/a.avi", "jump/b.avi")
    (tmp_path / "jump/x.avi").mkdir()
    (tmp_path / "run/gone.avi").symlink_to(tmp_path / "nowhere.avi")
    with caplog.at_level(logging.WARNING):
        index = load_dataset("folder", tmp_path, "1", test_fraction=0)
    assert sorted(v.path for v in index.videos) == ["jump/b.avi", "jump/x.avi", "run/a.avi", "run/gone.avi"]
    assert "2 listed videos under" in caplog.text and "are not files" in caplog.text
    assert "jump/x.avi (a directory)" in caplog.text and "run/gone.avi (a dangling symbolic link)" in caplog.text
    reasons = {}
    for video in index.videos:
        with pytest.raises(VideoError) as info:
            probe(tmp_path / video.path)
        reasons[video.path] = info.value.reason
    assert reasons == {
        "jump/b.avi": "empty file",
        "jump/x.avi": "no frame images (.jpg, .jpeg, .png) in this folder",  # a folder is read as a frame folder
        "run/a.avi": "empty file",
        "run/gone.avi": "dangling symbolic link",
    }


def test_probe_turns_os_errors_into_video_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "absent.avi")
    loop = tmp_path / "loop.avi"
    loop.symlink_to(loop)
    with pytest.raises(VideoError, match="loop.avi: unreadable: "):
        probe(loop)
    locked = tmp_path / "locked.avi"
    locked.write_bytes(b"not empty")

    def denied(path: str, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("pipeline.video.av.open", denied)  # root can read anything: simulate the denial
    with pytest.raises(VideoError, match="locked.avi: unreadable: permission denied"):
        probe(locked)


def test_keep_existing_keeps_non_files_and_reports_them_apart(ucf: Path, caplog) -> None:
    (ucf / "UCF-101/ZoomIn/v_ZoomIn_g09_c01.avi").mkdir()  # listed in trainlist01, now a folder
    (ucf / "UCF-101/ZoomIn/v_ZoomIn_g01_c01.avi").unlink()
    with caplog.at_level(logging.WARNING):
        index = load_dataset("ucf101", ucf, "1")
    paths = [v.path for v in index.videos]
    assert "UCF-101/ZoomIn/v_ZoomIn_g09_c01.avi" in paths
    assert index.missing == ("UCF-101/ZoomIn/v_ZoomIn_g01_c01.avi",)
    assert "1 of 6 listed videos are missing" in caplog.text
    assert "1 listed videos under" in caplog.text and "v_ZoomIn_g09_c01.avi (a directory)" in caplog.text


def test_nothing_but_non_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label,split\nv/a.mp4,x,train\nv/b.mp4,y,test\n")
    (tmp_path / "v/a.mp4").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"none of the 2 videos .* is a file .*1 missing, 1 not files"):
        load_dataset("manifest", tmp_path, "1")


# --- discovery ---------------------------------------------------------------------------------------


def test_dataset_names_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"folder", "hmdb51", "kinetics", "manifest", "ucf101"} <= set(dataset_names())
    # A new adapter module in the package is found without editing any list of names.
    (tmp_path / "zz_probe_adapter.py").write_text(
        "from pipeline.datasets.registry import DATASETS\n"
        "@DATASETS.register('zz_probe')\n"
        "def zz_probe(root, split, **options):\n"
        "    raise NotImplementedError\n"
    )
    (tmp_path / "_zz_private.py").write_text("raise AssertionError('private modules are not adapters')\n")
    monkeypatch.setattr(pipeline.datasets, "__path__", [*pipeline.datasets.__path__, str(tmp_path)])
    monkeypatch.setattr(DATASETS, "_builders", dict(DATASETS._builders))
    try:
        assert "zz_probe" in dataset_names()
        with pytest.raises(NotImplementedError):
            load_dataset("zz_probe", tmp_path, "1")
    finally:
        sys.modules.pop("pipeline.datasets.zz_probe_adapter", None)


def test_extract_teacher_offers_every_dataset() -> None:
    from teacher_extract.cli import extract_teacher

    option = next(p for p in extract_teacher.params if p.name == "dataset")
    assert list(option.type.choices) == dataset_names()


# --- mirror semantics -------------------------------------------------------------------------------

CLASSES = ("SwipeLeft", "Clap", "SwipeRight", "TurnLeft", "TurnRight")


def test_read_mirror_pairs(tmp_path: Path) -> None:
    path = tmp_path / "mirror_pairs.txt"
    write_crlf(path, ["SwipeLeft SwipeRight", "", "TurnRight  TurnLeft"])
    assert read_mirror_pairs(path, CLASSES) == (2, 1, 0, 4, 3)
    path.write_text("")
    assert read_mirror_pairs(path, CLASSES) == (0, 1, 2, 3, 4)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["SwipeLeft SwipeRight", "SwipeUp SwipeDown"], r"mirror_pairs.txt:2: unknown class 'SwipeUp'"),
        (
            ["SwipeLeft SwipeRight", "", "TurnLeft SwipeLeft"],
            r"mirror_pairs.txt:3: class 'SwipeLeft' is already paired on line 1",
        ),
        (["SwipeLeft SwipeRight Clap"], r"mirror_pairs.txt:1: expected '<ClassA> <ClassB>'"),
        (["Clap Clap"], r"mirror_pairs.txt:1: class 'Clap' is paired with itself"),
    ],
)
def test_mirror_pairs_errors_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "mirror_pairs.txt"
    write_crlf(path, lines)
    with pytest.raises(DatasetError, match=message):
        read_mirror_pairs(path, CLASSES)


def test_mirror_map_is_checked_and_defaults_to_identity(tmp_path: Path) -> None:
    videos = (VideoRecord("a.avi", 0),)
    index = DatasetIndex("x", tmp_path, "1", "classification", ("a", "b", "c"), videos)
    assert index.mirror == () and index.mirror_map() == (0, 1, 2)
    assert dataclasses.replace(index, mirror=(1, 0, 2)).mirror_map() == (1, 0, 2)
    with pytest.raises(DatasetError, match="not an involution: 'a' mirrors to 'b', which mirrors to 'c'"):
        dataclasses.replace(index, mirror=(1, 2, 0))
    with pytest.raises(DatasetError, match=r"one entry per class \(3\), got 2"):
        dataclasses.replace(index, mirror=(1, 0))
    with pytest.raises(DatasetError, match=r"mirror\[0\] = 7 is not a label"):
        dataclasses.replace(index, mirror=(7, 1, 2))


def test_ucf101_reads_its_mirror_pairs_by_default(ucf: Path) -> None:
    assert load_dataset("ucf101", ucf, "1").mirror_map() == (0, 1, 2)  # real UCF101: no file, identity
    write_crlf(ucf / "ucfTrainTestlist/mirror_pairs.txt", ["ZoomIn HandstandPushups"])
    index = load_dataset("ucf101", ucf, "1")
    assert index.mirror == (2, 1, 0)
    # The common option wins over the default file.
    (ucf / "other_pairs.txt").write_text("ZoomIn ApplyEyeMakeup\n")
    assert load_dataset("ucf101", ucf, "1", mirror_pairs="other_pairs.txt").mirror == (1, 0, 2)
    write_crlf(ucf / "ucfTrainTestlist/mirror_pairs.txt", ["ZoomIn Zoomout"])
    with pytest.raises(DatasetError, match=r"mirror_pairs.txt:1: unknown class 'Zoomout'"):
        load_dataset("ucf101", ucf, "1")


def test_mirror_pairs_option_on_any_adapter(tmp_path: Path) -> None:
    touch(tmp_path / "data", "left/1.mp4", "right/2.mp4", "still/3.mp4")
    (tmp_path / "data/pairs.txt").write_text("left right\n")
    index = load_dataset("folder", tmp_path / "data", "1", mirror_pairs="pairs.txt", test_fraction=0)
    assert index.classes == ("left", "right", "still") and index.mirror == (1, 0, 2)
    absolute = load_dataset("folder", tmp_path / "data", "1", mirror_pairs=str(tmp_path / "data/pairs.txt"))
    assert absolute.mirror == (1, 0, 2)
    assert load_dataset("folder", tmp_path / "data", "1").mirror == ()
    with pytest.raises(DatasetError, match="mirror_pairs file .*nope.txt does not exist"):
        load_dataset("folder", tmp_path / "data", "1", mirror_pairs="nope.txt")
    touch(tmp_path / "aqa", "v/a.mp4")
    (tmp_path / "aqa/manifest.csv").write_text("path,score,split\nv/a.mp4,81.5,train\n")
    (tmp_path / "aqa/pairs.txt").write_text("")
    with pytest.raises(DatasetError, match="regression dataset"):
        load_dataset("manifest", tmp_path / "aqa", "1", mirror_pairs="pairs.txt")

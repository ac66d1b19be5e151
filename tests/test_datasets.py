"""Every adapter on small trees made on disk (placeholder files: adapters never decode)."""

from pathlib import Path

import pytest

from pipeline.datasets import DatasetError, load_dataset


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
    with pytest.raises(DatasetError, match="exactly one Kinetics CSV"):
        load_dataset("kinetics", tmp_path, "400")
    with pytest.raises(DatasetError, match="missing column"):
        load_dataset("kinetics", tmp_path, "400", annotations="other.csv")


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
    with pytest.raises(
        ValueError, match="unknown dataset 'ucf'; valid names: folder, hmdb51, kinetics, manifest, ucf101"
    ):
        load_dataset("ucf", tmp_path, "1")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("ucf101", tmp_path / "nowhere", "1")

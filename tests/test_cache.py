"""The feature cache format: round trips, byte-identical rewrites, the contract's attributes, refusals, mirrors."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cache import (
    ENTRY_COLUMNS,
    VIDEO_COLUMNS,
    CacheError,
    CacheInfo,
    FeatureCache,
    VideoEntry,
    read_info,
    write_cache,
)


def make_info(**overrides) -> CacheInfo:
    values = dict(
        dataset="ucf101",
        dataset_root="data/synthetic",
        split="1",
        task="classification",
        classes=("Left", "Right"),
        teacher="tiny3d",
        teacher_weights="random:0",
        feature_dim=4,
        clip_len=16,
        frame_step=1,
        anchors="uniform:2",
        image_size=8,
        config={"teacher": "tiny3d"},
        code_version="test",
        config_key="abc",
    )
    values.update(overrides)
    return CacheInfo(**values)


def make_entry(
    path: str, n: int, split: str = "train", label: int = 0, seed: int = 0, logits: int = 0, mirror: bool = False
) -> VideoEntry:
    rng = np.random.default_rng(seed)
    return VideoEntry(
        path=path,
        label=label,
        score=float("nan"),
        split=split,
        num_frames=40,
        fps=25.0,
        fingerprint=f"fp-{path}",
        status="ok" if n else "failed: cannot open",
        frames=np.arange(n, dtype=np.int64) * 10,
        features=rng.normal(size=(n, 4)).astype(np.float32),
        images=rng.integers(0, 255, size=(n, 8, 8, 3), dtype=np.uint8),
        logits=rng.normal(size=(n, logits)).astype(np.float32) if logits else None,
        features_mirror=rng.normal(size=(n, 4)).astype(np.float32) if mirror else None,
        logits_mirror=rng.normal(size=(n, logits)).astype(np.float32) if mirror and logits else None,
    )


def write(path: Path, entries: list[VideoEntry], logits: int = 0, mirror: bool = False, **info) -> Path:
    n = sum(len(e.frames) for e in entries if e.ok)
    return write_cache(
        path, make_info(**info), entries, num_clips=n, image_shape=(8, 8, 3), num_logits=logits, mirror=mirror
    )


def test_round_trip(tmp_path: Path) -> None:
    entries = [
        make_entry("a.avi", 2, "train", 0, seed=1, logits=2),
        make_entry("b.avi", 0, "train", 1),
        make_entry("c.avi", 3, "test", 1, seed=2, logits=2),
    ]
    path = write(tmp_path / "f.h5", entries, logits=2)
    cache = FeatureCache(path)
    assert cache.info == make_info()
    assert len(cache) == 5
    assert list(cache.videos.path) == ["a.avi", "b.avi", "c.avi"]
    assert list(cache.videos.status) == ["ok", "failed: cannot open", "ok"]
    assert list(cache.clip_video) == [0, 0, 2, 2, 2]
    assert list(cache.clip_frame) == [0, 10, 0, 10, 20]
    assert list(cache.clip_indices("test")) == [2, 3, 4]
    assert list(cache.clip_label) == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(
        cache.features(np.array([3, 0])), np.stack([entries[2].features[1], entries[0].features[0]])
    )
    np.testing.assert_array_equal(cache.images(np.array([1])), entries[0].images[1:2])
    np.testing.assert_array_equal(cache.logits(np.array([4])), entries[2].logits[2:3])
    train = entries[0].features.astype(np.float64)
    np.testing.assert_allclose(cache.feature_mean, train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(cache.feature_std, train.std(0), rtol=1e-5)
    cache.load_into_memory()
    np.testing.assert_array_equal(
        cache.features(np.array([3, 0])), np.stack([entries[2].features[1], entries[0].features[0]])
    )
    again = cache.entry(2)
    np.testing.assert_array_equal(again.features, entries[2].features)
    assert again.fingerprint == "fp-c.avi"


def test_rewrites_are_byte_identical(tmp_path: Path) -> None:
    entries = [make_entry("a.avi", 2, seed=1), make_entry("b.avi", 1, "test", seed=2)]
    a = write(tmp_path / "a.h5", entries).read_bytes()
    b = write(tmp_path / "b.h5", entries).read_bytes()
    assert a == b


def test_attrs_follow_the_contract(tmp_path: Path) -> None:
    path = write(tmp_path / "f.h5", [make_entry("a.avi", 1)])
    with h5py.File(path) as f:
        assert f.attrs["format"] == "hallucinet-feature-cache" and f.attrs["version"] == 1
        assert json.loads(f.attrs["classes"]) == ["Left", "Right"]
        for name in ("path", "label", "score", "split", "num_frames", "fps", "fingerprint", "status"):
            assert f"videos/{name}" in f
        assert f["clips/image"].dtype == np.uint8 and f["clips/image"].shape == (1, 8, 8, 3)
        assert f["videos/label"].dtype == np.int64 and f["videos/score"].dtype == np.float32
    assert read_info(path).teacher == "tiny3d"


def test_refuses_non_cache_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CacheError, match="not a HalluciNet feature cache"):
        FeatureCache(plain)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(CacheError, match="not an HDF5 file"):
        FeatureCache(text)
    with pytest.raises(CacheError, match="no such file"):
        FeatureCache(tmp_path / "absent.h5")
    future = write(tmp_path / "v2.h5", [make_entry("a.avi", 1)])
    with h5py.File(future, "a") as f:
        f.attrs["version"] = 2
    with pytest.raises(CacheError, match="version 2"):
        FeatureCache(future)
    old = write(tmp_path / "old.h5", [make_entry("a.avi", 1)])
    with h5py.File(old, "a") as f:
        del f.attrs["feature_dim"]
    with pytest.raises(CacheError, match="'feature_dim'"):
        FeatureCache(old)


def test_refuses_a_cache_of_the_other_task(tmp_path: Path) -> None:
    path = write(tmp_path / "r.h5", [make_entry("a.avi", 1)], task="regression", classes=())
    with pytest.raises(CacheError, match="regression"):
        FeatureCache(path, require_task="classification")


def test_journal_entry_round_trip(tmp_path: Path) -> None:
    entry = make_entry("dir/a.avi", 3, logits=5)
    entry.save(tmp_path / "e.npz")
    back = VideoEntry.load(tmp_path / "e.npz")
    assert back.path == "dir/a.avi" and back.status == "ok" and np.isnan(back.score)
    np.testing.assert_array_equal(back.features, entry.features)
    np.testing.assert_array_equal(back.logits, entry.logits)
    assert not list(tmp_path.glob("*.tmp"))


def test_the_video_table_is_the_column_list() -> None:
    contract = ["path", "label", "score", "split", "num_frames", "fps", "fingerprint", "status"]
    assert list(VIDEO_COLUMNS) == [*contract, "first_clip", "num_clips"]
    assert tuple(VIDEO_COLUMNS)[:8] == ENTRY_COLUMNS  # a journal entry carries the contract's columns


def test_mirrored_outputs_round_trip(tmp_path: Path) -> None:
    entries = [
        make_entry("a.avi", 2, seed=1, logits=3, mirror=True),
        make_entry("b.avi", 3, "test", seed=2, logits=3, mirror=True),
    ]
    info = dict(mirror_classes=(1, 0), horizon=4, teacher_gflops=1.25)
    cache = FeatureCache(write(tmp_path / "m.h5", entries, logits=3, mirror=True, **info))
    assert cache.has_mirror and cache.info.mirror_map().tolist() == [1, 0]
    assert (cache.info.horizon, cache.info.teacher_gflops) == (4, 1.25)
    rows, mirrored = np.array([4, 0, 1]), np.array([True, False, True])
    want = [entries[1].features_mirror[2], entries[0].features[0], entries[0].features_mirror[1]]
    np.testing.assert_array_equal(cache.features(rows, mirrored), np.stack(want))
    np.testing.assert_array_equal(cache.features(rows, np.zeros(3, bool)), cache.features(rows))
    np.testing.assert_array_equal(cache.logits(np.array([3]), np.array([True])), entries[1].logits_mirror[1:2])
    assert cache.nbytes() == 5 * (8 * 8 * 3 + 2 * (4 * 4 + 4 * 3))
    cache.load_into_memory()  # the same answers from memory
    np.testing.assert_array_equal(cache.features(rows, mirrored), np.stack(want))
    np.testing.assert_array_equal(cache.entry(1).features_mirror, entries[1].features_mirror)
    plain = FeatureCache(write(tmp_path / "p.h5", [make_entry("a.avi", 2)]))
    assert not plain.has_mirror and plain.info.mirror_map().tolist() == [0, 1]  # identity without a map
    with pytest.raises(CacheError, match="holds no mirrored teacher outputs"):
        plain.features(np.array([0]), np.array([True]))
    with pytest.raises(ValueError, match="features_mirror missing"):
        write(tmp_path / "bad.h5", [make_entry("a.avi", 2)], mirror=True)


def test_older_writers_without_extension_attributes_still_read(tmp_path: Path) -> None:
    path = write(tmp_path / "f.h5", [make_entry("a.avi", 1)])
    with h5py.File(path, "a") as f:
        for name in ("mirror_classes", "horizon", "teacher_gflops", "teacher_preset"):
            del f.attrs[name]
    info = FeatureCache(path).info
    assert (info.mirror_classes, info.horizon, info.teacher_gflops, info.teacher_preset) == ((), 0, 0.0, {})


def test_a_cache_another_process_is_writing_is_not_called_broken(tmp_path: Path) -> None:
    import subprocess
    import sys

    from helpers import make_cache

    path = make_cache(tmp_path / "c.h5")
    holder = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(CacheError, match="open for writing in another process"):
            FeatureCache(path)
    finally:
        proc.kill()
        proc.wait()

"""Mirroring: a mirrored frame gets the mirrored label and the teacher's features of the mirrored clip.

Stage one caches the teacher's outputs on each horizontally mirrored clip; stage two mirrors a
frame only with those targets (or when it does not learn from targets: lambda 0); fit-teacher
mirrors labels through the dataset's mirror map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import MIRROR, make_cache, make_dataset, train_config
from helpers import extract_config as config

from pipeline.cache import FeatureCache
from pipeline.clips import clip_windows
from pipeline.video import decode
from student_train.data import CacheBatches
from student_train.presets import FramePreset
from student_train.train import Trainer
from teacher_extract import fit
from teacher_extract.extract import run_extraction
from teacher_extract.fit import FitConfig, Split, clip_batch, train_epoch
from teacher_extract.models import build_teacher

# --- stage one ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirrored_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A synthetic dataset, a tiny3d checkpoint with a 2-class head, and a cache extracted with --mirror."""
    tmp = tmp_path_factory.mktemp("mirror")
    root = make_dataset(tmp / "data")
    teacher = build_teacher("tiny3d", None, num_classes=2, seed=3)
    weights = tmp / "teacher.pt"
    torch.save({"state_dict": teacher.model.state_dict(), "classes": ["MoveLeft", "MoveRight"]}, weights)
    out = tmp / "f.h5"
    run_extraction(config(root, out, teacher_weights=str(weights), mirror=True))
    return root, weights, out


def test_extraction_caches_the_teacher_on_the_mirrored_clip(mirrored_cache: tuple[Path, Path, Path]) -> None:
    root, weights, out = mirrored_cache
    cache = FeatureCache(out)
    assert cache.has_mirror and cache.has_logits
    assert cache.info.mirror_classes == (1, 0)  # make-synthetic's mirror_pairs.txt: MoveLeft <-> MoveRight
    teacher = build_teacher("tiny3d", str(weights)).eval()
    checked = 0
    for v, path in enumerate(cache.videos.path):
        windows = {c.anchor: c for c in clip_windows(int(cache.videos.num_frames[v]), "uniform:2", 16)}
        for row in np.flatnonzero(cache.clip_video == v):
            frames = torch.from_numpy(decode(root / path, windows[int(cache.clip_frame[row])].frames).frames)
            clip = frames.permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
            with torch.inference_mode():
                plain = teacher(teacher.preset(clip)[None])
                flipped = teacher(teacher.preset(clip.flip(-1))[None])  # the mirrored video, then the preset
            rows, yes = np.array([row]), np.array([True])
            np.testing.assert_allclose(cache.features(rows)[0], plain[0][0].numpy(), atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(cache.features(rows, yes)[0], flipped[0][0].numpy(), atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(cache.logits(rows, yes)[0], flipped[1][0].numpy(), atol=1e-5, rtol=1e-5)
            assert not np.allclose(cache.features(rows)[0], cache.features(rows, yes)[0])
            checked += 1
    assert checked == len(cache) == 8


def test_mirroring_is_part_of_the_features_identity(mirrored_cache: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, weights, out = mirrored_cache
    copy = tmp_path / "f.h5"
    copy.write_bytes(out.read_bytes())
    summary = run_extraction(config(root, copy, teacher_weights=str(weights), mirror=False))
    assert summary.extracted == 4 and summary.skipped == 0  # not reused: the cache lacks nothing, it differs
    assert not FeatureCache(copy).has_mirror


# --- stage two ---------------------------------------------------------------------------------


def test_cache_batches_mirror_targets_labels_and_pixels(tmp_path: Path) -> None:
    cache = FeatureCache(make_cache(tmp_path / "c.h5", mirror=True))
    preset = FramePreset(crop_size=12)
    rows = np.arange(24)
    batch = CacheBatches(cache, preset, augment=True, mirror=True, seed=5)[(0, rows)]
    mirrored = batch.mirrored.numpy()
    assert 0 < mirrored.sum() < len(rows), "about half the frames are mirrored"
    every = np.ones(mirrored.sum(), bool)
    np.testing.assert_array_equal(batch.features.numpy()[mirrored], cache.features(rows[mirrored], every))
    np.testing.assert_array_equal(batch.features.numpy()[~mirrored], cache.features(rows[~mirrored]))
    np.testing.assert_array_equal(batch.logits.numpy()[mirrored], cache.logits(rows[mirrored], every))
    labels = cache.clip_label[rows]
    np.testing.assert_array_equal(batch.labels.numpy(), np.where(mirrored, np.array(MIRROR)[labels], labels))
    # the frame itself is flipped: the crop equals the stored frame cut and mirrored by hand
    images = cache.images(rows)
    crops = preset.apply(batch.images, batch.views).permute(0, 2, 3, 1).numpy()
    for i in range(len(rows)):
        top, left = int(batch.tops[i]), int(batch.lefts[i])
        expected = images[i, top : top + 12, left : left + 12]
        expected = expected[:, ::-1] if mirrored[i] else expected
        np.testing.assert_array_equal(crops[i], expected.astype(np.float32) / 255)


def test_without_mirror_the_batch_is_plain(tmp_path: Path) -> None:
    cache = FeatureCache(make_cache(tmp_path / "c.h5", mirror=True))
    batch = CacheBatches(cache, FramePreset(crop_size=12), augment=True, mirror=False, seed=5)[(0, np.arange(24))]
    assert not batch.mirrored.any()
    np.testing.assert_array_equal(batch.labels.numpy(), cache.clip_label[:24])
    np.testing.assert_array_equal(batch.features.numpy(), cache.features(np.arange(24)))


class RecordingTrainer(Trainer):
    """Keeps, for every training step, which frames were mirrored and the targets they got."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def train_step(self, batch):
        self.seen.append((batch.rows.numpy().copy(), batch.mirrored.numpy().copy(), batch.features.numpy().copy()))
        return super().train_step(batch)


@pytest.mark.parametrize(
    ("mirror_targets", "lambda_weight", "mirrors"),
    [(False, 50.0, False), (False, 0.0, True), (True, 50.0, True)],
)
def test_training_mirrors_only_with_mirrored_targets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mirror_targets: bool, lambda_weight: float, mirrors: bool
) -> None:
    path = make_cache(tmp_path / "c.h5", mirror=mirror_targets)
    cache = FeatureCache(path)
    with caplog.at_level(logging.WARNING, logger="student_train.train"):
        trainer = RecordingTrainer(train_config(path, tmp_path / "run", lambda_weight=lambda_weight, epochs=2))
        trainer.fit()
    flags = np.concatenate([m for _, m, _ in trainer.seen])
    assert flags.any() == mirrors
    said = [r for r in caplog.records if "no mirrored teacher targets" in r.getMessage()]
    assert len(said) == (0 if mirrors else 1)  # said once, not once per epoch or batch
    if mirror_targets:
        for rows, mirrored, features in trainer.seen:
            np.testing.assert_array_equal(features, cache.features(rows, mirrored))


# --- fit-teacher ---------------------------------------------------------------------------------


def two_videos() -> Split:
    """Two 20-frame videos (already at the teacher's 56x56 crop) of labels 0 and 1."""
    from pipeline.datasets import VideoRecord

    g = torch.Generator().manual_seed(0)
    videos = [torch.randint(0, 256, (20, 3, 56, 56), dtype=torch.uint8, generator=g) for _ in range(2)]
    return Split([VideoRecord("a.avi", 0), VideoRecord("b.avi", 1)], videos)


def test_clip_batch_flips_the_mirrored_clips() -> None:
    teacher = build_teacher("tiny3d", None, num_classes=2)
    split = two_videos()
    picks = [(0, tuple(range(16))), (1, tuple(range(2, 18)))]
    x = clip_batch(split, picks, np.array([True, False]), teacher, torch.device("cpu"))
    assert x.shape == (2, 3, 16, 56, 56)
    by_hand = [teacher.preset.normalize(split.videos[v][list(f)]).permute(1, 0, 2, 3) for v, f in picks]
    torch.testing.assert_close(x[0], by_hand[0].flip(-1))
    torch.testing.assert_close(x[1], by_hand[1])


def test_fit_teacher_mirrors_labels_through_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list] = {"mirror": [], "labels": [], "videos": []}
    real_clip_batch, real_loss = fit.clip_batch, fit.nnf.cross_entropy

    def spy_clip_batch(split, picks, mirror, teacher, device):
        seen["mirror"].append(mirror.copy())
        seen["videos"].append([v for v, _ in picks])
        return real_clip_batch(split, picks, mirror, teacher, device)

    def spy_loss(logits, labels):
        seen["labels"].append(labels.numpy().copy())
        return real_loss(logits, labels)

    monkeypatch.setattr(fit, "clip_batch", spy_clip_batch)
    monkeypatch.setattr(fit.nnf, "cross_entropy", spy_loss)
    teacher = build_teacher("tiny3d", None, num_classes=2)
    cfg = FitConfig(clips_per_video=4, batch_size=8, mirror=True)
    optimizer = torch.optim.SGD(teacher.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    mirror_map = np.array([1, 0])  # a hand-made 2-class map: each class is the other's mirror image
    train_epoch(teacher, two_videos(), cfg, optimizer, scheduler, np.random.default_rng(1), mirror_map, "cpu", "t")
    mirror, labels = np.concatenate(seen["mirror"]), np.concatenate(seen["labels"])
    truth = np.concatenate(seen["videos"])  # video v has label v
    assert len(mirror) == 8 and 0 < mirror.sum() < 8
    np.testing.assert_array_equal(labels, np.where(mirror, 1 - truth, truth))


def test_mirrored_labels_swap_pair_partners_only_where_mirrored() -> None:
    from pipeline.mirror import mirrored_labels

    pairs = np.array([1, 0, 2])  # classes 0 and 1 are a pair, 2 has none
    labels = np.array([0, 1, 2, -1, 0])
    assert mirrored_labels(labels, np.array([True, True, True, True, False]), pairs).tolist() == [1, 0, 2, -1, 0]
    assert mirrored_labels(labels, True, pairs).tolist() == [1, 0, 2, -1, 1]
    assert mirrored_labels(labels, False, pairs) is labels
    assert mirrored_labels(labels, True, np.array([], np.int64)) is labels  # no pairs: nothing to swap

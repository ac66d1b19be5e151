"""The student's input: the frame preset (crops and mirroring) and batches read from the cache alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_cache

from pipeline.cache import FeatureCache
from pipeline.errors import UserError
from student_train.data import DevicePrefetcher, batch_seed, make_loader, steps_per_epoch
from student_train.presets import FramePreset, Views


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache") / "features.h5")


def by_hand(images: np.ndarray, views: Views, crop: int) -> np.ndarray:
    """What a view of each frame is, with numpy slicing: ``(B, 3, crop, crop)`` float32 in [0, 1]."""
    out = []
    for image, top, left, mirrored in zip(images, views.tops, views.lefts, views.mirrored, strict=True):
        patch = image[top : top + crop, left : left + crop]
        out.append(patch[:, ::-1] if mirrored else patch)
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255


def test_train_views_mirror_about_half_and_cover_every_crop() -> None:
    views = FramePreset(crop_size=12).views(2000, 16, 20, np.random.default_rng(0))
    assert abs(views.mirrored.mean() - 0.5) < 3 * np.sqrt(0.25 / 2000)
    assert set(views.tops.tolist()) == set(range(5)) and set(views.lefts.tolist()) == set(range(9))
    plain = FramePreset(crop_size=12).views(100, 16, 20, np.random.default_rng(0), mirror=False)
    assert not plain.mirrored.any()
    again = FramePreset(crop_size=12).views(2000, 16, 20, np.random.default_rng(0))
    assert np.array_equal(views.tops, again.tops) and np.array_equal(views.mirrored, again.mirrored)


def test_apply_equals_a_numpy_crop_and_flip() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(32, 16, 20, 3), dtype=np.uint8)
    preset = FramePreset(crop_size=12)
    views = preset.views(32, 16, 20, rng)
    assert views.mirrored.any() and not views.mirrored.all()
    got = preset.apply(torch.from_numpy(images), views)
    assert got.dtype == torch.float32 and got.shape == (32, 3, 12, 12)
    np.testing.assert_array_equal(got.numpy(), by_hand(images, views, 12))
    # mirroring flips the pixels exactly: a mirrored view is the plain one reversed left to right
    flipped = Views(views.tops, views.lefts, ~views.mirrored)
    torch.testing.assert_close(preset.apply(torch.from_numpy(images), flipped), got.flip(-1), rtol=0, atol=0)


def test_eval_view_is_the_centre_crop() -> None:
    images = np.arange(2 * 7 * 6 * 3, dtype=np.uint8).reshape(2, 7, 6, 3)
    got = FramePreset(crop_size=4).eval(torch.from_numpy(images)).numpy()
    np.testing.assert_array_equal(got, images[:, 1:5, 1:5].transpose(0, 3, 1, 2).astype(np.float32) / 255)
    with pytest.raises(UserError, match="larger than the cached frames"):
        FramePreset(crop_size=7).eval(torch.from_numpy(images))


def test_loader_batches_do_not_depend_on_workers(cache_file: Path) -> None:
    cache = FeatureCache(cache_file)
    rows = cache.clip_indices("train")
    preset = FramePreset(crop_size=12)
    kwargs = dict(batch_size=8, train=True, seed=1, epoch=2, mirror=False)
    a = list(make_loader(cache, rows, preset, workers=0, **kwargs))
    b = list(make_loader(cache, rows, preset, workers=2, **kwargs))
    assert len(a) == len(rows) // 8 == steps_per_epoch(len(rows), 8)
    for x, y in zip(a, b, strict=True):
        for name in ("images", "rows", "tops", "lefts", "labels", "features"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert x.images.dtype == torch.uint8 and x.images.shape == (8, 16, 16, 3)  # cropped on the device
        r = x.rows.numpy()
        np.testing.assert_array_equal(x.features.numpy(), cache.features(r))
        np.testing.assert_array_equal(x.images.numpy(), cache.images(r))
        np.testing.assert_array_equal(x.labels.numpy(), cache.clip_label[r])
    assert len({int(r) for x in a for r in x.rows}) == 8 * len(a)  # an epoch visits each row at most once
    resumed = list(make_loader(cache, rows, preset, workers=0, start_step=2, **kwargs))
    assert all(
        torch.equal(x.images, y.images) and torch.equal(x.tops, y.tops) for x, y in zip(a[2:], resumed, strict=True)
    )


def test_epochs_and_ranks_differ_evaluation_is_plain(cache_file: Path) -> None:
    cache = FeatureCache(cache_file)
    rows = cache.clip_indices("train")
    preset = FramePreset(crop_size=12)
    first = next(iter(make_loader(cache, rows, preset, batch_size=8, train=True, seed=1, epoch=0)))
    second = next(iter(make_loader(cache, rows, preset, batch_size=8, train=True, seed=1, epoch=1)))
    assert not torch.equal(first.rows, second.rows)
    assert batch_seed(1, 0, 0, 0) != batch_seed(1, 0, 0, 1)
    shares = []
    for rank in range(2):
        loader = make_loader(cache, rows, preset, batch_size=4, train=True, seed=1, rank=rank, world_size=2)
        shares.append(np.concatenate([b.rows.numpy() for b in loader]))
    assert len(shares[0]) == len(shares[1]) and not set(shares[0]) & set(shares[1])
    test = cache.clip_indices("test")
    batches = list(make_loader(cache, test, preset, batch_size=5, train=False, seed=0))
    assert np.array_equal(np.concatenate([b.rows.numpy() for b in batches]), test)  # in order, last batch kept
    assert all((b.tops == 2).all() and not b.mirrored.any() for b in batches)


def test_device_prefetcher_yields_the_loader_batches(cache_file: Path) -> None:
    cache = FeatureCache(cache_file)
    preset = FramePreset(crop_size=12)
    loader = make_loader(cache, cache.clip_indices("train"), preset, batch_size=8, train=True, seed=3)
    direct = list(loader)
    fetched = list(DevicePrefetcher(loader, torch.device("cpu")))
    assert len(direct) == len(fetched)
    assert all(
        torch.equal(a.rows, b.rows) and torch.equal(a.images, b.images) for a, b in zip(direct, fetched, strict=True)
    )

    def broken():
        yield direct[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        list(DevicePrefetcher(broken(), torch.device("cpu")))

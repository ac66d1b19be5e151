"""``CacheDataset``: per-sample items over the cache, consistent mirroring, and the README's example, run."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CLASSES, MIRROR, make_cache

from pipeline.cache import CacheError, FeatureCache
from pipeline.errors import UserError
from student_train.dataset import CacheDataset

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "dataset_example.py"


@pytest.fixture(scope="module")
def mirrored_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache") / "features.h5", mirror=True)


def test_items_are_the_cached_clips(mirrored_cache: Path) -> None:
    cache = FeatureCache(mirrored_cache)
    data = CacheDataset(mirrored_cache, "test")
    assert len(data) == len(cache.clip_indices("test")) == 24 and data.classes == CLASSES and data.feature_dim == 8
    item = data[5]
    row = int(cache.clip_indices("test")[5])
    assert item["row"] == row and item["mirrored"] is False
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 16, 16)
    assert torch.equal(item["image"], torch.from_numpy(cache.images([row])[0]).permute(2, 0, 1))
    assert item["features"].dtype == torch.float32
    assert torch.equal(item["features"], torch.from_numpy(cache.features([row])[0]))
    assert item["label"] == cache.clip_label[row] and np.isnan(item["score"])
    assert len(CacheDataset(mirrored_cache, None)) == len(cache)
    assert data[-1]["row"] == int(cache.clip_indices("test")[-1])
    with pytest.raises(IndexError):
        data[len(data)]


def test_mirroring_is_seeded_per_item_and_carries_the_mirrored_targets(mirrored_cache: Path) -> None:
    cache = FeatureCache(mirrored_cache)
    data = CacheDataset(mirrored_cache, "train", mirror=True, seed=3)
    flips = [data.mirrored(i) for i in range(len(data))]
    assert 0.25 < np.mean(flips) < 0.75
    assert flips == [CacheDataset(mirrored_cache, "train", mirror=True, seed=3).mirrored(i) for i in range(len(data))]
    assert flips != [CacheDataset(mirrored_cache, "train", mirror=True, seed=4).mirrored(i) for i in range(len(data))]
    data.set_epoch(1)
    assert flips != [data.mirrored(i) for i in range(len(data))]
    i = next(i for i in range(len(data)) if data.mirrored(i) and data[i]["label"] != 2)  # Red or Green swap
    item, row = data[i], int(cache.clip_indices("train")[i])
    assert item["mirrored"] is True and item["label"] == MIRROR[cache.clip_label[row]]
    assert torch.equal(item["image"], torch.from_numpy(cache.images([row])[0]).permute(2, 0, 1).flip(-1))
    assert torch.equal(item["features"], torch.from_numpy(cache.features([row], np.array([True]))[0]))
    assert not torch.equal(item["features"], torch.from_numpy(cache.features([row])[0]))
    assert data[i]["mirrored"] is True  # the same flip on every read


def test_transform_and_refusals(mirrored_cache: Path, tmp_path: Path) -> None:
    data = CacheDataset(mirrored_cache, "test", transform=lambda image: image.float() / 255)
    assert data[0]["image"].dtype == torch.float32 and data[0]["image"].max() <= 1
    plain = make_cache(tmp_path / "plain.h5")
    with pytest.raises(CacheError, match="holds no mirrored teacher targets .* --mirror") as info:
        CacheDataset(plain, mirror=True)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="unknown split 'dev'; valid splits: train, val, test"):
        CacheDataset(plain, "dev")


def test_the_readme_example_trains_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """docs/dataset_example.py, the README's Dataset example, run as it is on a tiny cache in ./data."""
    (tmp_path / "data").mkdir()
    make_cache(tmp_path / "data" / "features.h5", size=32, mirror=True)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 1"]
    assert all(np.isfinite(float(line.rsplit(" ", 1)[1])) for line in lines)


def test_the_readme_shows_the_example_verbatim() -> None:
    """The README shows the example as this file's text, once (the two cannot drift apart)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    shown = [b for b in blocks if "from student_train.dataset import CacheDataset" in b]
    assert shown == [EXAMPLE.read_text()]

"""A per-sample :class:`torch.utils.data.Dataset` over the feature cache, for training loops of your own.

``train-student`` reads whole batches (:mod:`student_train.data`: one slice read per run of rows,
crops and mirroring on the device), which is faster; this class is the plain PyTorch interface to
the same data: one clip per item, a ``DataLoader`` does the rest. Each DataLoader worker opens the
HDF5 file itself, lazily (:class:`pipeline.cache.FeatureCache`), so any ``num_workers`` works.

With ``mirror=True`` an item is horizontally mirrored on a seeded coin flip, and carries the
teacher's features *of the mirrored clip* (``features_mirror``, cached by ``extract-teacher
--mirror``) and its label mapped through the dataset's mirror map (MoveLeft mirrored is MoveRight):
a mirrored frame with the plain clip's targets would teach a motion the frame does not show.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.cache import CacheError, FeatureCache
from pipeline.errors import UserError
from pipeline.mirror import mirrored_labels

SPLITS = ("train", "val", "test")


class CacheDataset(Dataset):
    """The clips of one split of a feature cache, one dict per item.

    Item ``i`` is ``{"image", "features", "label", "score", "row", "mirrored"}``:

    * ``image``: ``(3, H, W)`` uint8 RGB anchor frame as stored (``transform(image)`` when given);
    * ``features``: ``(D,)`` float32 teacher features of the clip that starts at that frame;
    * ``label``: int, -1 when the dataset has none; ``score``: float, NaN when none;
    * ``row``: the clip's row in the cache; ``mirrored``: whether this item was mirrored.

    Mirroring is a coin flip per item, drawn from ``(seed, epoch, index)``: the same item is
    mirrored the same way on every read, in any worker; :meth:`set_epoch` draws new flips for a new
    epoch (call it before creating the epoch's iterator, as with ``DistributedSampler``).

    Args:
        path: the cache file (or an open :class:`~pipeline.cache.FeatureCache`).
        split: ``"train"``, ``"val"`` or ``"test"``, or ``None`` for every clip.
        mirror: mirror half of the items, with mirrored targets and labels; the cache must hold
            mirrored targets (``extract-teacher --mirror``).
        transform: applied to each ``(3, H, W)`` uint8 image, e.g. a ``torchvision.transforms.v2`` pipeline.
        seed: seed of the coin flips.
    """

    def __init__(
        self,
        path: str | Path | FeatureCache,
        split: str | None = "train",
        *,
        mirror: bool = False,
        transform: Callable[[torch.Tensor], Any] | None = None,
        seed: int = 0,
    ):
        self.cache = path if isinstance(path, FeatureCache) else FeatureCache(path)
        if split is not None and split not in SPLITS:
            raise UserError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)} (or None for all clips)")
        if mirror and not self.cache.has_mirror:
            raise CacheError(
                f"{self.cache.path} holds no mirrored teacher targets (features_mirror): "
                "extract it with extract-teacher --mirror, or use mirror=False"
            )
        self.split, self.mirror, self.transform, self.seed = split, mirror, transform, seed
        self.rows = np.arange(len(self.cache)) if split is None else self.cache.clip_indices(split)
        self.mirror_map = self.cache.info.mirror_map()
        self.epoch = 0

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order (empty for a regression dataset)."""
        return tuple(self.cache.info.classes)

    @property
    def feature_dim(self) -> int:
        """Length of ``features``."""
        return self.cache.info.feature_dim

    def set_epoch(self, epoch: int) -> None:
        """Draw the mirror flips of ``epoch`` from now on."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def mirrored(self, index: int) -> bool:
        """Whether item ``index`` is mirrored (in the current epoch)."""
        return self.mirror and bool(np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index %= len(self)
        row = int(self.rows[index])
        flip = self.mirrored(index)
        rows = np.array([row])
        image = torch.from_numpy(self.cache.images(rows)[0]).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        image = image.flip(-1).contiguous() if flip else image.contiguous()
        features = torch.from_numpy(self.cache.features(rows, np.array([flip]))[0])  # (D,) float32
        label = int(mirrored_labels(self.cache.clip_label[rows], flip, self.mirror_map)[0])
        return {
            "image": self.transform(image) if self.transform is not None else image,
            "features": features,
            "label": label,
            "score": float(self.cache.clip_score[row]),
            "row": row,
            "mirrored": flip,
        }

"""Batches for the student, read from the feature cache alone.

Batches are fetched whole (one sorted fancy-index read per array per batch, not one read per
sample), from memory when the cache fits or from HDF5 otherwise; the h5py handle is opened
lazily in each DataLoader worker. Order and augmentation depend only on ``(seed, epoch, step)``,
so a run resumed mid-epoch sees exactly the batches an uninterrupted run would have.

Augmentation (train only): a random ``crop`` square of the stored frame and a horizontal flip.
The target stays what the teacher computed on the unaugmented clip, as in the reference code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.cache import FeatureCache


@dataclass
class Batch:
    """One training or evaluation batch.

    Attributes:
        images: ``(B, 3, crop, crop)`` float32 in [0, 1].
        features: ``(B, D)`` float32 teacher features.
        labels: ``(B,)`` int64 (-1 when none).
        scores: ``(B,)`` float32 (NaN when none).
        rows: ``(B,)`` int64 clip rows in the cache.
        logits: ``(B, C)`` teacher logits, or an empty ``(B, 0)`` tensor.
    """

    images: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    rows: torch.Tensor
    logits: torch.Tensor

    def pin_memory(self) -> Batch:
        return Batch(**{k: v.pin_memory() for k, v in self.__dict__.items()})


def batch_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed for one batch's augmentation, independent of worker count and resumption."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2, np.uint32)
    return int(state.view(np.uint64)[0] >> 1)


def epoch_order(rows: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The clip rows of one epoch in visiting order (a seeded permutation when shuffling)."""
    if not shuffle:
        return rows
    return rows[np.random.default_rng([seed, epoch]).permutation(len(rows))]


def crop_flip(images: np.ndarray, crop: int, rng: np.random.Generator | None) -> np.ndarray:
    """Crop ``(B, H, W, 3)`` frames to ``(B, crop, crop, 3)``: random crop + flip with ``rng``, centre without."""
    b, h, w, _ = images.shape
    if crop > min(h, w):
        raise ValueError(f"crop size {crop} is larger than the cached frames ({h}x{w})")
    if rng is None:
        top, left = (h - crop) // 2, (w - crop) // 2
        return images[:, top : top + crop, left : left + crop]
    tops = rng.integers(0, h - crop + 1, size=b)
    lefts = rng.integers(0, w - crop + 1, size=b)
    flips = rng.random(b) < 0.5
    out = np.empty((b, crop, crop, 3), np.uint8)
    for i in range(b):
        patch = images[i, tops[i] : tops[i] + crop, lefts[i] : lefts[i] + crop]
        out[i] = patch[:, ::-1] if flips[i] else patch
    return out


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> float ``(B, 3, H, W)`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


class CacheBatches(Dataset):
    """Map-style dataset whose items are whole batches: ``dataset[(step, rows)] -> Batch``."""

    def __init__(self, cache: FeatureCache, crop: int, *, augment: bool, seed: int, epoch: int = 0, rank: int = 0):
        self.cache, self.crop, self.augment, self.seed, self.epoch = cache, crop, augment, seed, epoch
        self.rank = rank

    def __len__(self) -> int:  # pragma: no cover - indexed through the sampler only
        return len(self.cache)

    def __getitem__(self, item: tuple[int, np.ndarray]) -> Batch:
        step, rows = item
        rng = np.random.default_rng(batch_seed(self.seed, self.epoch, step, self.rank)) if self.augment else None
        images = crop_flip(self.cache.images(rows), self.crop, rng)
        logits = self.cache.logits(rows)
        return Batch(
            images=to_tensor(images),
            features=torch.from_numpy(self.cache.features(rows)),
            labels=torch.from_numpy(self.cache.clip_label[rows]),
            scores=torch.from_numpy(self.cache.clip_score[rows]),
            rows=torch.from_numpy(rows),
            logits=torch.from_numpy(logits) if logits is not None else torch.zeros(len(rows), 0),
        )


class BatchOrder(Sampler):
    """Yields ``(step, rows)`` for the steps ``start..`` of an epoch (``start > 0`` resumes mid-epoch)."""

    def __init__(self, order: np.ndarray, batch_size: int, drop_last: bool, start: int = 0):
        n = steps_per_epoch(len(order), batch_size, drop_last)
        self.batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n)]
        self.start = start

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for step in range(self.start, len(self.batches)):
            yield step, self.batches[step]


def _identity(batch: Batch) -> Batch:
    return batch


def steps_per_epoch(num_rows: int, batch_size: int, drop_last: bool = True) -> int:
    return num_rows // batch_size if drop_last else -(-num_rows // batch_size)


def make_loader(
    cache: FeatureCache,
    rows: np.ndarray,
    *,
    batch_size: int,
    crop: int,
    train: bool,
    seed: int,
    epoch: int = 0,
    start_step: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader over ``rows`` of ``cache``: shuffled, augmented, full batches only when ``train``.

    Training drops the last partial batch (a batch of one breaks BatchNorm); evaluation keeps it.
    With ``world_size > 1`` (DistributedDataParallel) the epoch's order is cut to a multiple of
    ``world_size`` and rank ``r`` takes every ``world_size``-th row from ``r``: disjoint shares of
    equal length, so every rank runs the same number of steps.
    """
    order = epoch_order(np.asarray(rows), seed, epoch, shuffle=train)
    if world_size > 1:
        order = order[: len(order) - len(order) % world_size][rank::world_size]
    sampler = BatchOrder(order, batch_size, drop_last=train, start=start_step)
    dataset = CacheBatches(cache, crop, augment=train, seed=seed, epoch=epoch, rank=rank)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=_identity,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
    )

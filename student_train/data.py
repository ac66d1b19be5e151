"""Batches for the student, read from the feature cache alone.

A batch is fetched whole (one slice read per run of consecutive rows, see
:meth:`pipeline.cache.FeatureCache._read`), from memory when the cache fits or from HDF5
otherwise; the h5py handle is opened lazily in each DataLoader worker. Frames stay uint8 until
they are on the device, where :class:`student_train.presets.FramePreset` crops and mirrors them;
:class:`DevicePrefetcher` fetches the next batch while the current step runs.

Order and augmentation depend only on ``(seed, epoch, step)``, so a run resumed mid-epoch sees
exactly the batches an uninterrupted run would have.

Mirroring is consistent: a mirrored frame gets the teacher's features *of the mirrored clip*
(``extract-teacher --mirror``) and its label mapped through the dataset's mirror map (MoveLeft
mirrored is MoveRight). None of the reference implementations does this; without mirrored
targets, training that uses the targets does not mirror at all (see ``train-student``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.cache import FeatureCache
from pipeline.mirror import mirrored_labels
from student_train.presets import FramePreset, Views


@dataclass
class Batch:
    """One training or evaluation batch, on the host (pinned) or the device.

    Attributes:
        images: ``(B, H, W, 3)`` uint8 stored frames, not yet cropped.
        tops, lefts: ``(B,)`` int64 crop corners; mirrored: ``(B,)`` bool.
        features: ``(B, D)`` float32 teacher features (of the mirrored clip where ``mirrored``).
        labels: ``(B,)`` int64 (-1 when none; mirrored through the mirror map where ``mirrored``).
        scores: ``(B,)`` float32 (NaN when none).
        rows: ``(B,)`` int64 clip rows in the cache.
        logits: ``(B, C)`` teacher logits, or an empty ``(B, 0)`` tensor.
    """

    images: torch.Tensor
    tops: torch.Tensor
    lefts: torch.Tensor
    mirrored: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    rows: torch.Tensor
    logits: torch.Tensor

    def _map(self, fn) -> Batch:
        return Batch(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def pin_memory(self) -> Batch:
        return self._map(lambda t: t.pin_memory())

    def to(self, device: torch.device) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=True))

    @property
    def views(self) -> Views:
        return Views(self.tops, self.lefts, self.mirrored)


def batch_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed for one batch's augmentation, independent of worker count and resumption."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2, np.uint32)
    return int(state.view(np.uint64)[0] >> 1)


def epoch_order(rows: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The clip rows of one epoch in visiting order (a seeded permutation when shuffling)."""
    if not shuffle:
        return rows
    return rows[np.random.default_rng([seed, epoch]).permutation(len(rows))]


class CacheBatches(Dataset):
    """Map-style dataset whose items are whole batches: ``dataset[(step, rows)] -> Batch``.

    Args:
        cache: the feature cache.
        preset: the student's frame preset (draws the crops and mirror decisions).
        augment: random crops (and mirroring when ``mirror``); centre crops otherwise.
        mirror: mirror half of the frames, with mirrored targets and labels.
        seed, epoch, rank: what the batch's augmentation is seeded with.
    """

    def __init__(
        self,
        cache: FeatureCache,
        preset: FramePreset,
        *,
        augment: bool,
        mirror: bool,
        seed: int,
        epoch: int = 0,
        rank: int = 0,
    ):
        self.cache, self.preset, self.augment, self.mirror = cache, preset, augment, mirror
        self.seed, self.epoch, self.rank = seed, epoch, rank
        self.mirror_map = cache.info.mirror_map()

    def __len__(self) -> int:  # pragma: no cover - indexed through the sampler only
        return len(self.cache)

    def __getitem__(self, item: tuple[int, np.ndarray]) -> Batch:
        step, rows = item
        rng = np.random.default_rng(batch_seed(self.seed, self.epoch, step, self.rank)) if self.augment else None
        h, w = self.cache.image_shape[:2]
        views = self.preset.views(len(rows), h, w, rng, mirror=self.mirror)
        mirrored = views.mirrored if views.mirrored.any() else None
        labels = mirrored_labels(self.cache.clip_label[rows], views.mirrored, self.mirror_map)
        # Targets of a mirrored frame are the mirrored clip's; without them (lambda 0 runs on a
        # cache extracted without --mirror) the plain ones stand in, unused by the loss.
        targets = mirrored if self.cache.has_mirror else None
        logits = self.cache.logits(rows, targets)
        return Batch(
            images=torch.from_numpy(self.cache.images(rows)),
            tops=torch.from_numpy(np.asarray(views.tops, np.int64)),
            lefts=torch.from_numpy(np.asarray(views.lefts, np.int64)),
            mirrored=torch.from_numpy(np.asarray(views.mirrored, bool)),
            features=torch.from_numpy(self.cache.features(rows, targets)),
            labels=torch.from_numpy(np.asarray(labels, np.int64)),
            scores=torch.from_numpy(self.cache.clip_score[rows]),
            rows=torch.from_numpy(np.asarray(rows, np.int64)),
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
    preset: FramePreset,
    *,
    batch_size: int,
    train: bool,
    seed: int,
    mirror: bool = False,
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
    # Recorded here too, in the main process: a worker's reads do not reach this process's cache.
    cache.splits_read.update(str(x) for x in np.unique(cache.clip_split[np.asarray(rows, np.int64)]))
    order = epoch_order(np.asarray(rows), seed, epoch, shuffle=train)
    if world_size > 1:
        order = order[: len(order) - len(order) % world_size][rank::world_size]
    sampler = BatchOrder(order, batch_size, drop_last=train, start=start_step)
    dataset = CacheBatches(cache, preset, augment=train, mirror=mirror and train, seed=seed, epoch=epoch, rank=rank)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=_identity,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
    )


class DevicePrefetcher:
    """Iterate batches already on ``device``, the next one fetched and copied while the current step runs.

    A background thread pulls batches from the loader (on the CPU that is the HDF5 or memory
    read itself; with loader workers, the hand-over from them) and starts their non-blocking copy
    to the device on a side stream; the consumer's stream waits for that copy only when it uses
    the batch. ``depth`` batches are kept ready.
    """

    _END = object()

    def __init__(self, loader: Iterable[Batch], device: torch.device, depth: int = 2):
        self.loader, self.device, self.depth = loader, device, depth
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def _copy(self, batch: Batch) -> tuple[Batch, torch.cuda.Event | None]:
        if self.stream is None:
            return batch, None
        with torch.cuda.stream(self.stream):
            moved = batch.to(self.device)
            event = torch.cuda.Event()
            event.record(self.stream)
        return moved, event

    def __iter__(self) -> Iterator[Batch]:
        ready: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in self.loader:
                    if stop.is_set():
                        return
                    ready.put(self._copy(batch))
                ready.put((self._END, None))
            except BaseException as err:  # handed to the consumer, which re-raises it
                ready.put((err, None))

        thread = threading.Thread(target=produce, name="prefetch", daemon=True)
        thread.start()
        try:
            while True:
                batch, event = ready.get()
                if batch is self._END:
                    return
                if isinstance(batch, BaseException):
                    raise batch
                if event is not None:
                    torch.cuda.current_stream(self.device).wait_event(event)
                    for f in fields(batch):
                        getattr(batch, f.name).record_stream(torch.cuda.current_stream(self.device))
                yield batch
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    thread.join(0.01)

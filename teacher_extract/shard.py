"""Sharded extraction: N independent writers, one cache.

HDF5 has one writer per file, so each shard (a torchrun rank, or a ``--shard i/N`` job of a
Slurm array) extracts a disjoint share of the videos into its own shard file, a complete
version-1 cache of its videos. :func:`merge_shards` then **copies** the shards into the single
cache the student reads, in the dataset's order. A copy, not an HDF5 virtual dataset: the result
is one self-contained, chunked file (what DVC tracks and what ``train-student`` opens in each
DataLoader worker), its train statistics are recomputed over all shards, and it stays valid when
the shard files are moved or deleted. The copy costs seconds against hours of extraction.

Shard files stay beside the cache: each is its shard's incremental state, so rerunning with the
same N re-extracts only new or changed videos, shard by shard, with the usual crash safety.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.cache import CacheError, FeatureCache, VideoEntry, write_cache
from pipeline.datasets import DatasetIndex
from pipeline.errors import UserError

logger = logging.getLogger(__name__)

_SHARD_NAME = re.compile(r"\.shard(\d+)-of-(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; ``""`` -> ``(0, 1)`` (no sharding)."""
    if not text:
        return 0, 1
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise UserError(f"invalid shard {text!r}: use i/N with 0 <= i < N, e.g. 0/4")
    return int(match[1]), int(match[2])


def shard_path(out: str | Path, index: int, count: int) -> Path:
    """``features.h5`` -> ``features.shard01-of-04.h5``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard{index:02d}-of-{count:02d}{out.suffix}")


def select_shard(dataset: DatasetIndex, index: int, count: int) -> DatasetIndex:
    """Videos ``index, index + count, ...``: disjoint, and balanced in number (classes interleave too)."""
    return replace(dataset, videos=dataset.videos[index::count])


def find_shards(out: str | Path) -> list[Path]:
    """The shard files of ``out`` on disk, in shard order; raises unless they form one complete set."""
    out = Path(out)
    found: dict[int, set[int]] = {}
    for path in out.parent.glob(f"{out.stem}.shard*-of-*{out.suffix}"):
        match = _SHARD_NAME.search(path.name.removesuffix(out.suffix))
        if match:
            found.setdefault(int(match[2]), set()).add(int(match[1]))
    if not found:
        raise UserError(f"no shard files of {out} ({out.stem}.shardII-of-NN{out.suffix}) in {out.parent}")
    if len(found) > 1:
        raise CacheError(
            f"shard files of {out} from runs with different shard counts: {sorted(found)}; remove the stale ones"
        )
    count, indices = next(iter(found.items()))
    missing = sorted(set(range(count)) - indices)
    if missing:
        raise CacheError(f"shards {missing} of {count} of {out} are missing; run them before merging")
    return [shard_path(out, i, count) for i in range(count)]


def order_shards(caches: Sequence[FeatureCache]) -> list[FeatureCache]:
    """The shard caches in shard order, by the ``i/N`` each records, checked to be one complete set.

    Whatever the order (or the duplication) of an explicit list, the merged bytes are the same
    or the merge is refused: a shard given twice would write its videos twice, a missing one
    would leave part of the dataset out, both without a word.
    """
    by_index: dict[int, FeatureCache] = {}
    counts = set()
    for cache in caches:
        text = str(cache.info.config.get("shard", ""))
        if not text:
            raise CacheError(f"{cache.path} is not a shard (extract-teacher --shard i/N writes them)")
        i, n = parse_shard(text)
        counts.add(n)
        if i in by_index:
            raise CacheError(f"shard {i}/{n} is given twice: {by_index[i].path} and {cache.path}")
        by_index[i] = cache
    if len(counts) > 1:
        raise CacheError(f"the shards come from runs with different shard counts: {sorted(counts)}")
    count = counts.pop()
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise CacheError(f"shards {missing} of {count} are missing; run them before merging")
    return [by_index[i] for i in range(count)]


def merge_shards(shards: Sequence[str | Path], out: str | Path) -> tuple[int, int]:
    """Copy shard caches (each records its ``i/N``; any order) into one cache at ``out``, atomically.

    Returns ``(videos, failed videos)`` of the merged cache, so the caller can apply the run's
    failure threshold to the whole run.

    Video ``k`` of the dataset is video ``k // N`` of shard ``k % N`` (see :func:`select_shard`),
    so the merged rows are in the dataset's order, as a single-process run writes them.

    Raises:
        CacheError: the shards were made with different teachers, settings or datasets, or do
            not form one complete set (see :func:`order_shards`).
    """
    caches = order_shards([FeatureCache(p) for p in shards])
    first = caches[0].info
    for cache in caches[1:]:
        info = cache.info
        if (info.config_key, info.dataset, info.split, info.classes) != (
            first.config_key,
            first.dataset,
            first.split,
            first.classes,
        ):
            raise CacheError(f"{cache.path} was extracted with other settings or data than {caches[0].path}")
    count = len(caches)
    sizes = [len(c.videos) for c in caches]
    if any(not sizes[i + 1] <= sizes[i] <= sizes[i + 1] + 1 for i in range(count - 1)):
        raise CacheError(f"shard sizes {sizes} do not come from one round-robin split of a dataset")
    total = sum(sizes)
    num_clips = sum(len(c) for c in caches)

    def entries() -> Iterator[VideoEntry]:
        for k in range(total):
            yield caches[k % count].entry(k // count)

    config = {**first.config, "shard": ""}
    info = replace(first, config=config)
    write_cache(
        out,
        info,
        entries(),
        num_clips=num_clips,
        image_shape=caches[0].image_shape,
        num_logits=caches[0].num_logits,
        mirror=caches[0].has_mirror,
    )
    for cache in caches:
        cache.close()
    failed = sum(int((c.videos.status != "ok").sum()) for c in caches)
    logger.info("merged %d shards (%d videos, %d failed, %d clips) into %s", count, total, failed, num_clips, out)
    return total, failed

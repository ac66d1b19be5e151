"""How ``extract-teacher`` runs: one process, one ``--shard i/N`` job, or every rank of ``torchrun``."""

from __future__ import annotations

import logging
from dataclasses import replace

from pipeline.device import resolve_device
from pipeline.distributed import (
    all_gather_objects,
    barrier,
    broadcast_object,
    device_for,
    process_group,
    world_from_env,
)
from pipeline.errors import UserError
from teacher_extract.extract import (
    ExtractConfig,
    ExtractSummary,
    check_failures,
    choose_run_config,
    load_teacher,
    run_extraction,
)
from teacher_extract.shard import find_shards, merge_shards, parse_shard

logger = logging.getLogger(__name__)


def extract(cfg: ExtractConfig) -> ExtractSummary:
    """``extract-teacher``: one process, one ``--shard i/N`` job, or every rank of a ``torchrun`` launch.

    Under torchrun each rank extracts shard ``rank/world_size`` (on ``cuda:<local rank>`` where
    GPUs exist), then rank 0 merges the shards into ``cfg.out`` while the others wait; the failure
    threshold then applies to the whole run's count, as it does in a single process. A ``--shard``
    job leaves the threshold to ``merge-cache``, which sees every shard. Returns this process's
    summary (rank 0's covers the merged cache's totals).
    """
    world = world_from_env()
    if not world.distributed:
        sharded = parse_shard(cfg.shard)[1] > 1
        if sharded and cfg.precision == "auto":
            raise UserError(
                "--shard jobs must agree on the teacher's precision, and each machine would time it by itself "
                "(the precision is part of the cache key, so merge-cache would refuse the shards): set "
                "--precision fp32 or bf16 (extract-teacher without --shard logs what auto picks on a machine)"
            )
        summary = run_extraction(cfg, apply_threshold=not sharded)
        if sharded:
            logger.info("when every shard is done: merge-cache --out %s", cfg.out)
        return summary
    if cfg.shard:
        raise UserError("--shard is for independent jobs; under torchrun every rank takes its shard by itself")
    cfg = replace(cfg, shard=f"{world.rank}/{world.size}", device=device_for(world, cfg.device))
    with process_group(world, resolve_device(cfg.device)):
        if "auto" in (cfg.precision, cfg.memory_format):
            # One decision for every rank: timings on a busy machine differ between ranks, and
            # shards extracted with different choices cannot be merged.
            run = None
            if world.main:
                device = resolve_device(cfg.device)
                run = choose_run_config(cfg, load_teacher(cfg, device), device)
                logger.info("rank 0 chose %s + %s for every rank", run.precision, run.memory_format)
            run = broadcast_object(run)
            cfg = replace(cfg, precision=run.precision, memory_format=run.memory_format)
        summary = run_extraction(cfg, apply_threshold=False)
        barrier()
        summaries = all_gather_objects(summary)
        total = ExtractSummary(
            **{k: sum(getattr(s, k) for s in summaries) for k in ("videos", "extracted", "skipped", "failed")}
        )
        if world.main:
            merge_shards(find_shards(cfg.out), cfg.out)
            logger.info(
                "all %d ranks: %d videos (%d extracted, %d skipped, %d failed)",
                world.size,
                total.videos,
                total.extracted,
                total.skipped,
                total.failed,
            )
        barrier()
    check_failures(total.failed, total.videos, cfg.max_failed_fraction, cfg.out, total)
    return total if world.main else summary

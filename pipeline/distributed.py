"""torch.distributed as both stages use it: started by ``torchrun``, which sets the environment.

Nothing here starts processes: ``torchrun --nproc-per-node N`` (and ``--nnodes``/rendezvous
flags for several machines) does, and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Without
them a command runs as one ordinary process.

Collectives time out after ``HALLUCINET_DIST_TIMEOUT`` seconds (default 7200): long enough for
rank 0 to merge and copy a Kinetics-sized cache while the other ranks wait at a barrier (torch's
own default, 10 minutes on NCCL and 30 on gloo, is not).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from pipeline.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 7200


def collective_timeout() -> timedelta:
    """How long a rank waits in a collective: ``HALLUCINET_DIST_TIMEOUT`` seconds, default 2 hours."""
    text = os.environ.get("HALLUCINET_DIST_TIMEOUT", "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"HALLUCINET_DIST_TIMEOUT must be a number of seconds > 0, got {text[:40]!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The world torchrun describes in the environment (a single process when it does not)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def device_for(world: World, device: str) -> str:
    """Each rank's device: ``cuda`` becomes ``cuda:<local rank>`` under torchrun."""
    if world.distributed and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return device


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """Initialise the default process group for the run (NCCL on GPUs, gloo on CPUs), then destroy it."""
    if not world.distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=collective_timeout())
    logger.info("rank %d of %d (%s backend)", world.rank, world.size, backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity in one process)."""
    if dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (``obj`` itself in one process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out

"""Per-prediction cost of a model: GFLOPs (counted, exact) and latency (timed, noisy)."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.inference_mode()
def count_gflops(model: nn.Module, example: torch.Tensor) -> float:
    """GFLOPs of one forward pass on ``example`` (multiply-adds count as 2): exact, machine-independent."""
    with FlopCounterMode(display=False) as counter:
        model(example)
    return counter.get_total_flops() / 1e9


@torch.inference_mode()
def measure_cost(model: nn.Module, example: torch.Tensor, repeats: int = 5) -> dict[str, float]:
    """GFLOPs of one forward pass on ``example`` and its median latency in milliseconds.

    FLOPs as :func:`count_gflops` counts them (exact, machine-independent); latency is the
    median of ``repeats`` timed runs after a warm-up.
    """
    was_training = model.training
    model.eval()
    gflops = count_gflops(model, example)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        model(example)
        times.append(time.perf_counter() - t0)
    model.train(was_training)
    times = sorted(times[1:])
    return {"gflops": gflops, "latency_ms": 1000 * times[len(times) // 2]}

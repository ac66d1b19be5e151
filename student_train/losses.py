"""Task loss + lambda x hallucination loss, returned in parts so training can log each.

Hallucination losses (``kind``), all averaged over the batch and the teacher's feature dims:

- ``mse_sigmoid``: ``MSE(sigmoid(h), sigmoid(t))``, the reference recipe (default lambda 50).
  The sigmoid bounds both sides, so a few very large teacher activations cannot dominate.
- ``mse``: ``MSE(h, (t - mean) / std)`` with the cache's train statistics: every feature
  counts equally whatever its scale. ``h`` is then a standardised prediction (no ReLU head).
- ``cosine``: ``1 - cos(h, t)``: matches the direction of the feature vector only.

``lambda = 0`` is the single-frame baseline: the total is then exactly the task loss (the
hallucination term is reported but not added). ``task = "none"`` trains the hallucination alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

TASKS = ("classification", "regression", "none")
HALLUCINATION_LOSSES = ("mse_sigmoid", "mse", "cosine")


def hallucination_loss(
    hallucinated: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar loss between hallucinated ``(B, D)`` and teacher ``(B, D)`` features.

    ``mean``/``std`` ``(D,)`` are the cache's train statistics, needed by ``mse`` only.
    """
    if kind == "mse_sigmoid":
        return F.mse_loss(torch.sigmoid(hallucinated), torch.sigmoid(target))
    if kind == "mse":
        if mean is None or std is None:
            raise ValueError("the 'mse' hallucination loss needs the cache's feature mean and std")
        return F.mse_loss(hallucinated, (target - mean) / std.clamp_min(1e-6))
    if kind == "cosine":
        return (1 - F.cosine_similarity(hallucinated, target, dim=1, eps=1e-8)).mean()
    raise ValueError(f"unknown hallucination loss {kind!r}; valid names: {', '.join(HALLUCINATION_LOSSES)}")


def to_teacher_space(
    hallucinated: torch.Tensor, kind: str, mean: torch.Tensor | None, std: torch.Tensor | None
) -> torch.Tensor:
    """Map the hallucination head's output to the teacher's feature space (undo ``mse``'s standardising)."""
    if kind == "mse":
        return hallucinated * std.clamp_min(1e-6) + mean
    return hallucinated


def task_loss(outputs: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Cross-entropy on labels ``(B,)`` int64, or MSE on standardised scores ``(B,)`` float."""
    if task == "classification":
        return F.cross_entropy(outputs, target)
    if task == "regression":
        return F.mse_loss(outputs[:, 0], target)
    if task == "none":
        return outputs.new_zeros(())
    raise ValueError(f"unknown task {task!r}; valid names: {', '.join(TASKS)}")


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    task: torch.Tensor
    hallucination: torch.Tensor


class HalluciNetLoss:
    """``total = task + lambda_weight * hallucination`` (``task = none``: ``lambda_weight * hallucination``).

    Args:
        task: ``classification``, ``regression`` or ``none``.
        kind: hallucination loss name.
        lambda_weight: weight of the hallucination term.
        mean, std: ``(D,)`` cache statistics (for ``mse``).
    """

    def __init__(
        self,
        task: str,
        kind: str,
        lambda_weight: float,
        mean: torch.Tensor | None = None,
        std: torch.Tensor | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid names: {', '.join(TASKS)}")
        if kind not in HALLUCINATION_LOSSES:
            raise ValueError(f"unknown hallucination loss {kind!r}; valid names: {', '.join(HALLUCINATION_LOSSES)}")
        if lambda_weight < 0:
            raise ValueError(f"lambda must be >= 0, got {lambda_weight}")
        if task == "none" and lambda_weight == 0:
            raise ValueError("task 'none' with lambda 0 has nothing to learn; give lambda > 0")
        self.task, self.kind, self.lambda_weight = task, kind, lambda_weight
        self.mean, self.std = mean, std

    def to(self, device: torch.device) -> HalluciNetLoss:
        if self.mean is not None:
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def __call__(
        self, outputs: torch.Tensor, hallucinated: torch.Tensor, target: torch.Tensor, features: torch.Tensor
    ) -> LossParts:
        """Loss parts for task outputs ``(B, C)``, hallucinated ``(B, D)``, task target ``(B,)``, teacher ``(B, D)``."""
        # Losses in fp32 even under autocast: MSE of sigmoids differs by ~1e-3, bf16 cannot hold that.
        outputs, hallucinated = outputs.float(), hallucinated.float()
        t = task_loss(outputs, target, self.task)
        h = hallucination_loss(hallucinated, features, self.kind, self.mean, self.std)
        if self.lambda_weight == 0:
            total = t
        else:
            total = self.lambda_weight * h if self.task == "none" else t + self.lambda_weight * h
        return LossParts(total=total, task=t, hallucination=h)

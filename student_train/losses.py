"""Task loss + lambda x hallucination loss, returned in parts so training can log each.

Both families are registries, built by name: tasks (:data:`TASKS`) and hallucination losses
(:data:`LOSSES`), each entry saying everything the rest of stage two needs about it.

Hallucination losses, all averaged over the batch and the teacher's feature dims:

- ``mse_sigmoid``: ``MSE(sigmoid(h), sigmoid(t))``, the reference recipe (default lambda 50).
  The sigmoid bounds both sides, so a few very large teacher activations cannot dominate.
- ``mse``: ``MSE(h, (t - mean) / std)`` with the cache's train statistics: every feature
  counts equally whatever its scale. ``h`` is then a standardised prediction (no ReLU head).
- ``cosine``: ``1 - cos(h, t)``: matches the direction of the feature vector only.

``lambda = 0`` is the single-frame baseline: the total is then exactly the task loss (the
hallucination term is reported but not added). ``task = "none"`` trains the hallucination alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.errors import UserError
from pipeline.registry import Registry

Stats = tuple[torch.Tensor | None, torch.Tensor | None]


@dataclass(frozen=True)
class HallucinationLoss:
    """One hallucination loss.

    Attributes:
        fn: ``(hallucinated (B, D), teacher (B, D), mean (D,) | None, std (D,) | None) -> scalar``.
        nonnegative: its predictions live in the teacher's (post-ReLU) space, so the head ends
            with a ReLU, as the reference code's; ``False`` for standardised targets.
        standardised: predictions are in the cache's standardised feature space.
    """

    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]
    nonnegative: bool = True
    standardised: bool = False

    def to_teacher_space(self, hallucinated: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None):
        """Map the head's output ``(B, D)`` to the teacher's feature space (undo standardising)."""
        return hallucinated * std.clamp_min(1e-6) + mean if self.standardised else hallucinated


LOSSES: Registry[Callable[[], HallucinationLoss]] = Registry("hallucination loss")


@LOSSES.register("mse_sigmoid")
def mse_sigmoid() -> HallucinationLoss:
    return HallucinationLoss(lambda h, t, mean, std: F.mse_loss(torch.sigmoid(h), torch.sigmoid(t)))


def _standardised_mse(h, t, mean, std):
    if mean is None or std is None:
        raise UserError("the 'mse' hallucination loss needs the cache's feature mean and std")
    return F.mse_loss(h, (t - mean) / std.clamp_min(1e-6))


@LOSSES.register("mse")
def mse() -> HallucinationLoss:
    return HallucinationLoss(_standardised_mse, nonnegative=False, standardised=True)


@LOSSES.register("cosine")
def cosine() -> HallucinationLoss:
    return HallucinationLoss(lambda h, t, mean, std: (1 - F.cosine_similarity(h, t, dim=1, eps=1e-8)).mean())


def hallucination_loss(
    hallucinated: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar loss ``kind`` between hallucinated ``(B, D)`` and teacher ``(B, D)`` features."""
    return LOSSES.get(kind)().fn(hallucinated, target, mean, std)


@dataclass(frozen=True)
class Task:
    """A task head and its loss: ``num_outputs`` wide, ``fn(outputs (B, C), target (B,)) -> scalar``."""

    num_outputs: int
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


#: name -> ``num_classes -> Task``.
TASKS: Registry[Callable[[int], Task]] = Registry("task")


@TASKS.register("classification")
def classification(num_classes: int) -> Task:
    """Cross-entropy on labels ``(B,)`` int64."""
    return Task(num_classes, F.cross_entropy)


@TASKS.register("regression")
def regression(num_classes: int) -> Task:
    """MSE on standardised scores ``(B,)`` float (one output)."""
    return Task(1, lambda outputs, target: F.mse_loss(outputs[:, 0], target))


@TASKS.register("none")
def none(num_classes: int) -> Task:
    """No task head: hallucination-only pre-training."""
    return Task(0, lambda outputs, target: outputs.new_zeros(()))


def task_loss(outputs: torch.Tensor, target: torch.Tensor, task: str, num_classes: int = 0) -> torch.Tensor:
    """The task's loss of ``outputs`` ``(B, C)`` against ``target`` ``(B,)``."""
    return TASKS.get(task)(num_classes).fn(outputs, target)


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    task: torch.Tensor
    hallucination: torch.Tensor


class HalluciNetLoss:
    """``total = task + lambda_weight * hallucination`` (``task = none``: ``lambda_weight * hallucination``).

    Args:
        task: a :data:`TASKS` name.
        kind: a :data:`LOSSES` name.
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
        self.task_fn = TASKS.get(task)(0).fn
        self.halluc = LOSSES.get(kind)()
        if lambda_weight < 0:
            raise UserError(f"lambda must be >= 0, got {lambda_weight}")
        if task == "none" and lambda_weight == 0:
            raise UserError("task 'none' with lambda 0 has nothing to learn; give lambda > 0")
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
        t = self.task_fn(outputs, target)
        h = self.halluc.fn(hallucinated, features, self.mean, self.std)
        if self.lambda_weight == 0:
            total = t
        else:
            total = self.lambda_weight * h if self.task == "none" else t + self.lambda_weight * h
        return LossParts(total=total, task=t, hallucination=h)

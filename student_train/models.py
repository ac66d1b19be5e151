"""The student registry and the HalluciNet model.

A student is a 2D backbone that maps one frame to pooled features ``(B, D_student)``, plus two
heads on those features: the task head (class logits, or one standardised score) and the
hallucination head ``Linear(D_student, D_teacher)`` (+ ReLU, as the reference code) that
predicts the teacher's features of the clip starting at that frame.

The model takes frames as float ``(B, 3, H, W)`` in ``[0, 1]`` and applies ImageNet
normalisation itself, so an exported model and ``predict`` cannot disagree with training on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from pipeline.checkpoint import read_state_dict
from pipeline.registry import Registry

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: name -> ``weights (torchvision name or None) -> (backbone, feature_dim)``.
STUDENTS: Registry[Callable[[str | None], tuple[nn.Module, int]]] = Registry("student")


def student_names() -> list[str]:
    return STUDENTS.names()


def _torchvision_backbone(name: str, head: str, keep: int | None) -> None:
    """Register a torchvision classifier whose head ``head`` is cut to give pooled features.

    ``keep=None`` replaces the head by an identity; ``keep=k`` keeps the head's first ``k``
    modules (VGG's and MobileNetV3's penultimate fully connected layers, as their papers use).
    """

    def build(weights: str | None) -> tuple[nn.Module, int]:
        model = torchvision.models.get_model(name, weights=weights)
        old = getattr(model, head)
        if keep is None:
            dim = old.in_features if isinstance(old, nn.Linear) else old[-1].in_features
            setattr(model, head, nn.Identity())
        else:
            kept = old[:keep]
            dim = next(m.out_features for m in reversed(kept) if isinstance(m, nn.Linear))
            setattr(model, head, kept)
        return model, dim

    STUDENTS.register(name)(build)


_torchvision_backbone("resnet18", "fc", None)
_torchvision_backbone("resnet34", "fc", None)
_torchvision_backbone("resnet50", "fc", None)
_torchvision_backbone("vgg11_bn", "classifier", 5)  # Linear-ReLU-Dropout-Linear-ReLU: 4096-d
_torchvision_backbone("mobilenet_v3_small", "classifier", 2)  # Linear-Hardswish: 1024-d
_torchvision_backbone("mobilenet_v3_large", "classifier", 2)  # 1280-d
_torchvision_backbone("efficientnet_b0", "classifier", None)  # Dropout-Linear -> identity: 1280-d


@STUDENTS.register("tiny")
def tiny(weights: str | None) -> tuple[nn.Module, int]:
    """Three strided convolutions, 64-d: for tests and quick smoke runs, never for results."""
    if weights is not None:
        raise ValueError("student 'tiny' has no published weights; use --student-weights PATH or none")

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    net = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net, 64


def _resolve_weights(name: str, weights: str) -> str:
    """Check a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``, ``Enum.MEMBER``) before any download."""
    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError:
        raise ValueError(f"student {name!r} has no torchvision weights") from None
    member = weights.split(".")[-1]
    if member != "DEFAULT" and member not in enum.__members__:
        valid = ", ".join(["DEFAULT", *enum.__members__])
        raise ValueError(
            f"student weights {weights!r} are neither an existing checkpoint file nor a weights name ({valid})"
        )
    return member


class HalluciNet(nn.Module):
    """Backbone -> pooled features -> (task head, hallucination head).

    Args:
        backbone: ``(B, 3, H, W) -> (B, D)`` pooled features.
        feature_dim: ``D``.
        num_outputs: task head width: number of classes, 1 for a score, 0 for no task
            (hallucination-only pre-training).
        teacher_dim: width of the teacher's features.
        relu: end the hallucination head with a ReLU (the reference recipe; off for targets
            that can be negative, such as standardised features).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_outputs: int, teacher_dim: int, relu: bool = True):
        super().__init__()
        self.backbone = backbone
        self.task_head = nn.Linear(feature_dim, num_outputs) if num_outputs else None
        layers: list[nn.Module] = [nn.Linear(feature_dim, teacher_dim)]
        if relu:
            layers.append(nn.ReLU())
        self.hallucination_head = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` in [0, 1] -> (task outputs ``(B, num_outputs)``, hallucinated ``(B, teacher_dim)``).

        With no task head the first output is an empty ``(B, 0)`` tensor, so the signature
        (and an exported graph) is the same for every task.
        """
        x = self.backbone((images - self.mean) / self.std)
        out = self.task_head(x) if self.task_head is not None else x.new_zeros(x.shape[0], 0)
        return out, self.hallucination_head(x)


def build_student(
    name: str,
    *,
    num_outputs: int,
    teacher_dim: int,
    weights: str | None = None,
    relu: bool = True,
) -> HalluciNet:
    """Build a registry student with fresh heads.

    Args:
        name: registry name (see :func:`student_names`).
        num_outputs: task head width (0: none).
        teacher_dim: hallucination head width.
        weights: ``None`` (random init), a torchvision weights name for the backbone (needs a
            network the first time), or a checkpoint path whose backbone keys are loaded
            (a torchvision classifier file, or a train-student checkpoint; heads are ignored).
        relu: see :class:`HalluciNet`.
    """
    builder = STUDENTS.get(name)
    path = Path(weights) if weights else None
    if path is not None and path.is_file():
        backbone, dim = builder(None)
        _load_backbone(backbone, path)
    elif weights:
        backbone, dim = builder(_resolve_weights(name, weights))
    else:
        backbone, dim = builder(None)
    return HalluciNet(backbone, dim, num_outputs, teacher_dim, relu=relu)


def _load_backbone(backbone: nn.Module, path: Path) -> None:
    """Load the keys of ``path`` that fit ``backbone``; a classifier head of another size is skipped."""
    state, _ = read_state_dict(path)
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path}: no weights in this checkpoint fit the student backbone")
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        logger.warning("%s: %d backbone tensors not in the checkpoint keep their random init", path, len(missing))
    backbone.load_state_dict(usable, strict=False)


def load_init(model: HalluciNet, path: str | Path) -> None:
    """Start from a train-student checkpoint (``--init``): backbone and hallucination head.

    The task head is left fresh, so a hallucination-only pre-training (``--task none``)
    or a model trained for another label set can initialise a new task.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init checkpoint {path} does not exist")
    state, _ = read_state_dict(path)
    wanted = {k: v for k, v in state.items() if not k.startswith("task_head.")}
    own = model.state_dict()
    bad = [k for k, v in wanted.items() if k not in own or own[k].shape != v.shape]
    if bad or not wanted:
        raise ValueError(
            f"{path} does not fit this student (mismatched keys such as {bad[:3]}); "
            "--init needs a checkpoint of the same student and teacher feature size"
        )
    model.load_state_dict(wanted, strict=False)

"""The student registry and the HalluciNet model.

A student is a 2D backbone that maps one frame to pooled features ``(B, D_student)``, plus two
heads on those features: the task head (class logits, or one standardised score) and the
hallucination head ``Linear(D_student, D_teacher)`` (+ ReLU, as the reference code) that
predicts the teacher's features of the clip starting at that frame.

Students are built by name: our own builders in :data:`STUDENTS` (``tiny``), then any image
classifier of torchvision (``torchvision.models.list_models(module=torchvision.models)``: resnet,
vgg, mobilenet, efficientnet, regnet, convnext, vit, swin...), with its classification layer cut
off (see :func:`_cut_head`) and the feature width measured by a dummy forward pass, so a new
torchvision family needs no code here.

The model takes frames as float ``(B, 3, H, W)`` in ``[0, 1]`` and applies ImageNet
normalisation itself, so an exported model and ``predict`` cannot disagree with training on it.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.checkpoint import read_state_dict
from pipeline.errors import UserError
from pipeline.registry import Registry
from pipeline.weights import get_model, weights_member

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Our own builders: name -> ``weights (torchvision name or None) -> (backbone, feature_dim)``.
#: Every torchvision image classifier is a student too, without being listed here.
STUDENTS: Registry[Callable[[str | None], tuple[nn.Module, int]]] = Registry("student")

#: Attributes holding the classification head, in the order torchvision's families use them
#: (resnet/regnet/shufflenet ``fc``; vgg/mobilenet/efficientnet/convnext/densenet ``classifier``;
#: vit ``heads``; swin ``head``).
_HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
#: Input sides tried by the dummy forward that measures the feature width: small first (cheap);
#: vit and maxvit only accept their training size, inception needs at least 75 pixels.
_PROBE_SIZES = (64, 224, 299)


def _torchvision():
    """torchvision, imported only when a torchvision student is asked for.

    Importing it pulls in ``torch._dynamo``: 1.9 of the 4.2 s that starting train-student took
    (``python -X importtime -c "import student_train.cli"``), paid by every run of our own students.
    """
    import torchvision

    return torchvision


@functools.cache
def torchvision_students() -> tuple[str, ...]:
    """torchvision's image classifiers (not its detection, segmentation, video or quantized models)."""
    tv = _torchvision()
    return tuple(sorted(tv.models.list_models(module=tv.models)))


def student_names() -> list[str]:
    """Every valid ``--student``: our registry's names and torchvision's image classifiers."""
    return sorted(set(STUDENTS.names()) | set(torchvision_students()))


def _cut_head(head: nn.Module) -> nn.Module:
    """The head without its classification layer: what is left computes the pooled features.

    The classification layer is the head's last ``Linear`` (SqueezeNet's: its last ``Conv2d``).
    Layers before it stay, minus the dropout right before it: so VGG and AlexNet keep their
    penultimate fully connected layer (4096-d, as their papers' features), MobileNetV3 its
    Linear-Hardswish (1024/1280-d), ConvNeXt its LayerNorm and Flatten, MaxViT its pre-logits;
    a head that was only (Dropout,) Linear becomes an identity (ResNet, EfficientNet, ViT...).
    After it, only pooling and flattening stay (SqueezeNet's global average pool).
    Kept layers keep their names, so torchvision checkpoints still load into them.
    """
    if isinstance(head, nn.Linear):
        return nn.Identity()
    if not isinstance(head, nn.Sequential):
        raise ValueError(f"cannot find the classification layer in a {type(head).__name__} head")
    layers = list(head.named_children())
    last = [i for i, (_, m) in enumerate(layers) if isinstance(m, nn.Linear)]
    last = last or [i for i, (_, m) in enumerate(layers) if isinstance(m, nn.Conv2d)]
    if not last:
        raise ValueError(f"no Linear or Conv2d classification layer in head {head}")
    kept = layers[: last[-1]]
    while kept and isinstance(kept[-1][1], nn.Dropout):
        kept.pop()
    kept += [(n, m) for n, m in layers[last[-1] + 1 :] if isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten))]
    return nn.Sequential(OrderedDict(kept)) if kept else nn.Identity()


@torch.no_grad()
def _feature_dim(model: nn.Module, name: str) -> int:
    """Width of the backbone's output, measured by one forward pass in eval mode (BatchNorm-safe)."""
    was_training = model.training
    model.eval()
    try:
        errors = []
        for side in _PROBE_SIZES:
            try:
                out = model(torch.zeros(1, 3, side, side))
            except (RuntimeError, ValueError, AssertionError) as err:  # input too small for this family
                errors.append(f"{side}px: {err}")
                continue
            if not isinstance(out, torch.Tensor) or out.ndim != 2:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"student {name!r} gives {shape} features, not (batch, features)")
            return int(out.shape[1])
        raise ValueError(f"student {name!r} failed a dummy forward pass at every size ({'; '.join(errors)})")
    finally:
        model.train(was_training)


def _torchvision_student(name: str, weights: Any | None) -> tuple[nn.Module, int]:
    """A torchvision classifier with its classification layer cut off, and its feature width."""
    kwargs = {"init_weights": True} if weights is None and name in ("googlenet", "inception_v3") else {}
    model = get_model(name, weights, **kwargs)
    if getattr(model, "aux_logits", False):
        # GoogLeNet/Inception return (logits, aux...) in training mode; their aux heads are not features.
        model.aux_logits = False
        for aux in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    head = next((a for a in _HEAD_ATTRIBUTES if isinstance(getattr(model, a, None), nn.Module)), None)
    if head is None:
        raise ValueError(f"torchvision model {name!r} has none of the heads {', '.join(_HEAD_ATTRIBUTES)}")
    setattr(model, head, _cut_head(getattr(model, head)))
    return model, _feature_dim(model, name)


def _student_builder(name: str) -> Callable[[str | None], tuple[nn.Module, int]]:
    if name in STUDENTS:
        return STUDENTS.get(name)
    if name in torchvision_students():
        return functools.partial(_torchvision_student, name)
    raise UserError(f"unknown student {name!r}; valid names: {', '.join(student_names())}")


def check_student(name: str) -> None:
    """Refuse an unknown ``--student``, listing the valid names; torchvision is imported only for a
    name that is not ours (its import is a second of every run's start, 81 runs in the protocol)."""
    _student_builder(name)


@STUDENTS.register("tiny")
def tiny(weights: str | None) -> tuple[nn.Module, int]:
    """Three strided convolutions, 64-d: for tests and quick smoke runs, never for results."""
    if weights is not None:
        raise UserError("student 'tiny' has no published weights; use --student-weights PATH or none")

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    net = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net, 64


@STUDENTS.register("small")
def small(weights: str | None) -> tuple[nn.Module, int]:
    """A plain 8-layer CNN sized for small frames and little data (the synthetic default's student).

    Four stages of (stride-2 3x3 conv, 3x3 conv), 16-32-64-128 channels, BatchNorm and ReLU,
    global average pooling: 0.29M parameters, 128-d features. ImageNet-scale students (resnet18:
    11M) fit a few thousand training frames by heart; this one has to generalise. Random init only.
    """
    if weights is not None:
        raise UserError("student 'small' has no published weights; use --student-weights PATH or none")

    def conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    layers: list[nn.Module] = []
    cin = 3
    for cout in (16, 32, 64, 128):
        layers += conv(cin, cout, 2) + conv(cout, cout, 1)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), cin


def _resolve_weights(name: str, weights: str) -> Any:
    """The torchvision weights member ``weights`` names, checked before any download."""
    try:
        enum = _torchvision().models.get_model_weights(name)
    except ValueError:  # not a torchvision model (one of ours): it has none
        enum = None
    return weights_member("student", name, weights, enum)


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
    """Build a student by name, with fresh heads.

    Args:
        name: a name of :func:`student_names` (ours, or any torchvision image classifier).
        num_outputs: task head width (0: none).
        teacher_dim: hallucination head width.
        weights: ``None`` (random init), a torchvision weights name for the backbone (needs a
            network the first time), or a checkpoint path whose backbone keys are loaded
            (a torchvision classifier file, or a train-student checkpoint; heads are ignored).
        relu: see :class:`HalluciNet`.
    """
    builder = _student_builder(name)
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


def check_input_size(model: nn.Module, crop: int, name: str) -> None:
    """Refuse, in one line, a student that cannot take ``crop``-pixel frames (ViT wants 224, say).

    One forward pass of a zero frame in eval mode: no batch-norm statistics move, no random
    number is drawn, so the run that follows is the same as without the check.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, crop, crop))
    except (AssertionError, RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UserError(
            f"student {name!r} cannot take {crop}x{crop} frames ({reason}); choose another --student, "
            "or a --crop-size it accepts (and a cache of frames at least that large)"
        ) from None
    finally:
        model.train(was_training)


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
        raise UserError(
            f"{path} does not fit this student (mismatched keys such as {bad[:3]}); "
            "--init needs a checkpoint of the same student and teacher feature size"
        )
    model.load_state_dict(wanted, strict=False)

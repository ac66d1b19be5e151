"""The teacher registry: 3D-CNNs built by name, each with its preprocessing preset.

A :class:`Teacher` wraps a model in its *native* layout (the key names of its published
checkpoints, so users can load those files), and returns two things for a batch of clips:
the pooled penultimate features (the input of the classifier head, captured with a forward
pre-hook so no architecture is re-implemented) and the head's logits.

Weights: a torchvision weights name (downloaded where a network exists), a local checkpoint
(plain state_dict, or a dict with ``state_dict``/``model``; ``module.`` prefixes stripped; a
classifier head of any size is rebuilt to fit), or a seeded random init.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from pipeline.checkpoint import file_hash, read_state_dict
from pipeline.errors import UserError
from pipeline.registry import Registry
from pipeline.weights import get_model, weights_member
from teacher_extract.presets import VideoPreset, from_torchvision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherSpec:
    """How to build one registry entry.

    Attributes:
        build: ``num_classes -> native model`` (random init).
        head: attribute path of the classifier head module (``"fc"``, ``"classifier"``...).
        head_weight: state-dict key of the head's weight, to read a checkpoint's class count.
        preset: preprocessing the model expects.
        feature_dim: width of the pooled features.
        default_classes: head size when nothing else says.
        weights_enum: torchvision weights enum, if the model has published torchvision weights.
    """

    build: Callable[[int], nn.Module]
    head: str
    head_weight: str
    preset: VideoPreset
    feature_dim: int
    default_classes: int = 400
    weights_enum: type | None = None


TEACHERS: Registry = Registry("teacher")


class Teacher(nn.Module):
    """A frozen 3D-CNN that maps clips to (features, logits).

    Attributes:
        name: registry name.
        preset: its preprocessing.
        feature_dim: width of the features.
        num_classes: width of the logits, 0 when the head is untrained (random init).
        classes: names of the logits' classes when known (Kinetics categories, fit-teacher's classes).
        weights_id: ``<Enum>.<member>``, ``sha256:<hex>`` of a checkpoint, or ``random:<seed>``.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        spec: TeacherSpec,
        *,
        preset: VideoPreset,
        num_classes: int,
        classes: tuple[str, ...],
        weights_id: str,
    ):
        super().__init__()
        self.name = name
        self.model = model
        self.preset = preset
        self.feature_dim = spec.feature_dim
        self.num_classes = num_classes
        self.classes = classes
        self.weights_id = weights_id
        self._captured: torch.Tensor | None = None
        head = model.get_submodule(spec.head)
        head.register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._captured = args[0]

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(N, 3, T, h, w)`` -> (features ``(N, feature_dim)``, logits ``(N, num_classes)`` or None)."""
        logits = self.model(clips)
        features = self._captured.flatten(1)
        self._captured = None
        assert features.shape[1] == self.feature_dim, features.shape
        return features, (logits.flatten(1) if self.num_classes else None)


def teacher_names() -> list[str]:
    return TEACHERS.names()


# --- torchvision video models ------------------------------------------------------------------


def _video_model(name: str, member: Any | None = None, **kwargs: Any) -> nn.Module:
    """A torchvision video model, with published weights ``member`` or random init."""
    model = get_model(name, member, **kwargs)
    if name == "s3d":
        # S3D pools with a fixed AvgPool3d((2, 7, 7)), which only fits 16x224x224 input;
        # adaptive pooling gives the same numbers there and also works at 112.
        model.avgpool = nn.AdaptiveAvgPool3d(1)
    return model


def _torchvision(name: str, head: str, head_weight: str, feature_dim: int, enum: type) -> None:
    def build(num_classes: int) -> nn.Module:
        return _video_model(name, num_classes=num_classes)

    spec = TeacherSpec(build, head, head_weight, from_torchvision(enum.DEFAULT), feature_dim, 400, enum)
    TEACHERS.register(name)(lambda: spec)


_tv = torchvision.models.video
_torchvision("r3d_18", "fc", "fc.weight", 512, _tv.R3D_18_Weights)
_torchvision("mc3_18", "fc", "fc.weight", 512, _tv.MC3_18_Weights)
_torchvision("r2plus1d_18", "fc", "fc.weight", 512, _tv.R2Plus1D_18_Weights)
_torchvision("s3d", "classifier", "classifier.1.weight", 1024, _tv.S3D_Weights)
_torchvision("mvit_v2_s", "head", "head.1.weight", 768, _tv.MViT_V2_S_Weights)
_torchvision("swin3d_t", "head", "head.weight", 768, _tv.Swin3D_T_Weights)


# --- C3D (Tran et al. 2015) ----------------------------------------------------------------------


class C3D(nn.Module):
    """C3D with the layer names of the widely used PyTorch port of the Sports-1M weights
    (``c3d.pickle``: conv1, conv2, conv3a/b, conv4a/b, conv5a/b, fc6-fc8, 487 classes).

    Input ``(N, 3, 16, 112, 112)``; features are fc6 after ReLU (4096-d), as in the paper.
    """

    def __init__(self, num_classes: int = 487):
        super().__init__()

        def conv(cin: int, cout: int) -> nn.Conv3d:
            return nn.Conv3d(cin, cout, kernel_size=3, padding=1)

        self.conv1, self.conv2 = conv(3, 64), conv(64, 128)
        self.conv3a, self.conv3b = conv(128, 256), conv(256, 256)
        self.conv4a, self.conv4b = conv(256, 512), conv(512, 512)
        self.conv5a, self.conv5b = conv(512, 512), conv(512, 512)
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(0.5)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relu
        x = self.pool1(r(self.conv1(x)))  # (N, 64, 16, 56, 56)
        x = self.pool(r(self.conv2(x)))  # (N, 128, 8, 28, 28)
        x = self.pool(r(self.conv3b(r(self.conv3a(x)))))  # (N, 256, 4, 14, 14)
        x = self.pool(r(self.conv4b(r(self.conv4a(x)))))  # (N, 512, 2, 7, 7)
        x = self.pool5(r(self.conv5b(r(self.conv5a(x)))))  # (N, 512, 1, 4, 4)
        x = self.dropout(r(self.fc6(x.flatten(1))))  # (N, 4096): the features (fc7's input)
        x = self.dropout(r(self.fc7(x)))
        return self.fc8(x)


# The Sports-1M port takes raw 0-255 RGB without mean subtraction, so in our [0, 1]
# convention: mean 0, std 1/255. Frames 128x171, centre crop 112, as in the paper.
_C3D_PRESET = VideoPreset(crop_size=(112, 112), resize_size=(128, 171), mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)
TEACHERS.register("c3d")(lambda: TeacherSpec(C3D, "fc7", "fc8.weight", _C3D_PRESET, 4096, 487))


# --- 3D ResNeXt-101 (Hara et al. 2018), the HalluciNet reference code's teacher ------------------


class ResNeXtBottleneck(nn.Module):
    expansion = 2

    def __init__(
        self, inplanes: int, planes: int, cardinality: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        mid = cardinality * (planes // 32)
        self.conv1 = nn.Conv3d(inplanes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNeXt3D(nn.Module):
    """3D ResNeXt with kenshohara/3D-ResNets-PyTorch's key names (``resnext-101-kinetics.pth``):
    shortcut type B, cardinality 32. Pooling is adaptive, so any clip size works (the authors'
    fixed AvgPool3d gives the same numbers at 16x112x112)."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 23, 3), cardinality: int = 32, num_classes: int = 400):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._layer(128, layers[0], cardinality, 1)
        self.layer2 = self._layer(256, layers[1], cardinality, 2)
        self.layer3 = self._layer(512, layers[2], cardinality, 2)
        self.layer4 = self._layer(1024, layers[3], cardinality, 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(cardinality * 32 * ResNeXtBottleneck.expansion, num_classes)

    def _layer(self, planes: int, blocks: int, cardinality: int, stride: int) -> nn.Sequential:
        out = planes * ResNeXtBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(out)
            )
        layers = [ResNeXtBottleneck(self.inplanes, planes, cardinality, stride, downsample)]
        self.inplanes = out
        layers += [ResNeXtBottleneck(out, planes, cardinality) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))  # (N, 2048) -> (N, num_classes)


# The authors' models take 0-255 pixels minus the ActivityNet mean (114.8, 107.7, 99.5), std 1,
# on frames scaled to 112 (short side) and centre-cropped to 112.
_RESNEXT_PRESET = VideoPreset(
    crop_size=(112, 112),
    resize_size=(112,),
    mean=(114.7748 / 255, 107.7354 / 255, 99.4750 / 255),
    std=(1 / 255,) * 3,
)
TEACHERS.register("resnext3d_101")(
    lambda: TeacherSpec(lambda n: ResNeXt3D(num_classes=n), "fc", "fc.weight", _RESNEXT_PRESET, 2048, 400)
)


# --- tiny3d: the embedded default and the tests ---------------------------------------------------


class Tiny3D(nn.Module):
    """A small 3D-CNN for the embedded default and the tests: it sees what *moves*.

    The clip's temporal mean is subtracted from every frame first, so a static background (which
    differs between the train and test groups of the synthetic data) is gone before the first
    convolution, and the network spends its capacity on motion: measured on the synthetic
    default, a plain version stayed at chance on the held-out groups after 10 epochs where this
    one reached 0.85. Then four strided conv3d blocks (16-32-64-128, temporal kernels of 3),
    global pooling, a linear head. Input ``(N, 3, 16, 56, 56)``.
    """

    def __init__(self, num_classes: int = 400, width: int = 16):
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        strides = [(1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
        blocks = []
        for cin, cout, stride in zip(chans, chans[1:], strides, strict=False):
            blocks += [nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU()]
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=2, keepdim=True)  # (N, 3, T, h, w): what changes over the clip
        return self.fc(self.avgpool(self.features(x)).flatten(1))


_TINY_PRESET = VideoPreset(crop_size=(56, 56), resize_size=(64,))
TEACHERS.register("tiny3d")(lambda: TeacherSpec(Tiny3D, "fc", "fc.weight", _TINY_PRESET, 128, 400))


# --- building -------------------------------------------------------------------------------------


def build_teacher(
    name: str,
    weights: str | None = None,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    crop_size: int | None = None,
) -> Teacher:
    """Build a teacher by registry name.

    Args:
        name: registry name (see :func:`teacher_names`).
        weights: ``None`` for a random init seeded with ``seed``; a checkpoint path; or a
            torchvision weights name (``DEFAULT``, ``KINETICS400_V1``, ``R3D_18_Weights.KINETICS400_V1``).
        num_classes: give the teacher a fresh head of this size (fit-teacher on random init).
        seed: seed of the random init (the global RNG state is left untouched).
        crop_size: run at another input size than the preset's (e.g. ``s3d`` at 112).

    Raises:
        UserError: unknown name (listing valid ones), bad weights string, unreadable or
            mismatched checkpoint, or named torchvision weights that cannot be downloaded.
    """
    spec: TeacherSpec = TEACHERS.get(name)()
    preset = spec.preset if crop_size is None else spec.preset.scaled(crop_size)
    classes: tuple[str, ...] = ()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if weights is None:
            size = num_classes or spec.default_classes
            model, weights_id = spec.build(size), f"random:{seed}"
            trained_head = num_classes is not None
        elif Path(weights).is_file():
            state, classes = read_state_dict(weights)
            head = state.get(spec.head_weight)
            size = head.shape[0] if head is not None else spec.default_classes
            model = spec.build(size)
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as err:  # shape mismatches
                raise UserError(f"{weights} does not fit teacher {name!r}: {str(err).splitlines()[1].strip()}") from err
            # A checkpoint without a classifier (features only) is fine: the head stays untrained.
            bad_missing = [k for k in missing if head is not None or not _is_head_key(k, spec)]
            if bad_missing or unexpected:
                raise UserError(
                    f"{weights} does not fit teacher {name!r}: missing {bad_missing[:5]}, unexpected {unexpected[:5]}"
                )
            trained_head = head is not None
            if num_classes is not None and num_classes != size:
                model = _replace_head(model, spec, num_classes)
                trained_head, classes = True, ()
            weights_id = file_hash(weights)
        else:
            member = weights_member("teacher", name, weights, spec.weights_enum)
            model = _video_model(name, member)
            classes = tuple(member.meta.get("categories") or ())
            trained_head = True
            weights_id = f"{type(member).__name__}.{member.name}"
            if num_classes is not None:
                model = _replace_head(model, spec, num_classes)
                classes = ()
    head_size = _head_size(model, spec)
    if len(classes) != head_size:
        classes = ()
    teacher = Teacher(
        name,
        model,
        spec,
        preset=preset,
        num_classes=head_size if trained_head else 0,
        classes=classes,
        weights_id=weights_id,
    )
    return teacher.eval()


def _head_size(model: nn.Module, spec: TeacherSpec) -> int:
    return model.state_dict()[spec.head_weight].shape[0]


def _replace_head(model: nn.Module, spec: TeacherSpec, num_classes: int) -> nn.Module:
    """A fresh head of ``num_classes`` outputs, the rest of the model kept (fine-tuning)."""
    fresh = spec.build(num_classes)
    state = {k: v for k, v in model.state_dict().items() if not _is_head_key(k, spec)}
    fresh.load_state_dict(state, strict=False)
    return fresh


def _is_head_key(key: str, spec: TeacherSpec) -> bool:
    return key.startswith(spec.head_weight.rsplit(".", 1)[0] + ".")

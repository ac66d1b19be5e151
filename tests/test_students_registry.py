"""Students by name: our registry plus any torchvision image classifier, heads cut generically."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision
from torch import nn

from pipeline.errors import UserError
from student_train.models import _cut_head, build_student, student_names


def test_student_names_are_ours_plus_torchvision_classifiers() -> None:
    names = student_names()
    assert {"tiny", "resnet18", "vgg11_bn", "regnet_x_400mf", "vit_b_16"} <= set(names)
    assert names == sorted(names)
    assert "fasterrcnn_resnet50_fpn" not in names and "r3d_18" not in names  # detection / video models
    with pytest.raises(UserError, match=r"unknown student 'resnet19'; valid names: .*regnet_x_400mf.*tiny"):
        build_student("resnet19", num_outputs=2, teacher_dim=4)


def test_a_torchvision_student_outside_the_old_list_builds_and_backpropagates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_student("regnet_x_400mf", num_outputs=3, teacher_dim=8)
    images = torch.rand(2, 3, 32, 32)
    features = model.backbone(images)
    assert features.shape == (2, 400)  # RegNetX-400MF's pooled width, measured not hard-coded
    assert model.hallucination_head[0].in_features == model.task_head.in_features == features.shape[1]
    out, hallucinated = model(images)
    assert out.shape == (2, 3) and hallucinated.shape == (2, 8)
    (out.sum() + hallucinated.sum()).backward()
    assert model.backbone.stem[0].weight.grad is not None


def test_cut_head_keeps_penultimate_layers_and_their_names() -> None:
    vgg_like = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Dropout(), nn.Linear(6, 4), nn.ReLU(), nn.Dropout())
    vgg_like.append(nn.Linear(4, 10))
    cut = _cut_head(vgg_like)
    assert [type(m) for m in cut] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU]  # VGG's classifier[:5]
    assert list(cut.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert isinstance(_cut_head(nn.Sequential(nn.Dropout(), nn.Linear(8, 10))), nn.Identity)  # EfficientNet
    assert isinstance(_cut_head(nn.Linear(8, 10)), nn.Identity)  # ResNet's fc
    squeeze = nn.Sequential(nn.Dropout(), nn.Conv2d(8, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    assert [type(m) for m in _cut_head(squeeze)] == [nn.AdaptiveAvgPool2d]  # SqueezeNet keeps its pooling


def test_aux_heads_are_dropped_so_training_mode_returns_features() -> None:
    model = build_student("googlenet", num_outputs=2, teacher_dim=4).train()
    out, hallucinated = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2) and hallucinated.shape == (2, 4)


def test_failed_student_weights_download_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = torchvision.models.get_model_weights("regnet_x_400mf").DEFAULT
    file = weights.url.rsplit("/", 1)[1]
    with pytest.raises(UserError) as info:  # reported by the CLI in one line
        build_student("regnet_x_400mf", num_outputs=2, teacher_dim=4, weights="DEFAULT")
    message = str(info.value)
    assert "\n" not in message and f"could not download {type(weights).__name__}.{weights.name}" in message
    assert f"({weights.url})" in message and f"put it in {tmp_path / 'hub' / 'checkpoints' / file}" in message


def test_student_weights_names_are_checked_before_any_download() -> None:
    with pytest.raises(UserError, match=r"valid weights names: DEFAULT, ResNet18_Weights\.IMAGENET1K_V1"):
        build_student("resnet18", num_outputs=2, teacher_dim=4, weights="IMAGENET9K_V9")
    with pytest.raises(UserError, match="small has no torchvision weights"):
        build_student("small", num_outputs=2, teacher_dim=4, weights="DEFAULT")

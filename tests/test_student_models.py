"""Students by name: the HalluciNet model on a few backbones, clear errors, and weights from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.errors import UserError
from student_train.models import build_student, load_init

# Our own students and a spread of torchvision families (each cuts its head off differently).
SAMPLE = ("tiny", "small", "resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_0")


@pytest.mark.parametrize("name", SAMPLE)
def test_students_build_and_run(name: str) -> None:
    model = build_student(name, num_outputs=3, teacher_dim=5).eval()
    out, h = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3) and h.shape == (2, 5) and (h >= 0).all()


def test_hallucination_only_student_has_no_task_outputs() -> None:
    model = build_student("tiny", num_outputs=0, teacher_dim=5, relu=False).eval()
    out, h = model(torch.rand(2, 3, 32, 32))
    assert model.task_head is None and out.shape == (2, 0) and h.shape == (2, 5) and (h < 0).any()


def test_unknown_student_and_weights_are_clear() -> None:
    with pytest.raises(UserError, match="valid names: .*resnet18"):
        build_student("resnet19", num_outputs=2, teacher_dim=4)
    with pytest.raises(UserError, match="IMAGENET1K_V1"):
        build_student("resnet18", num_outputs=2, teacher_dim=4, weights="IMAGENET_BEST")


def test_student_weights_from_a_torchvision_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    classifier = torchvision.models.resnet18(num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in classifier.state_dict().items()}}, tmp_path / "r18.pth")
    model = build_student("resnet18", num_outputs=3, teacher_dim=4, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(model.backbone.conv1.weight, classifier.conv1.weight)


def test_init_from_another_students_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_student("tiny", num_outputs=3, teacher_dim=4)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "pre.pt")
    torch.manual_seed(1)
    target = build_student("tiny", num_outputs=3, teacher_dim=4)
    load_init(target, tmp_path / "pre.pt")
    for key, value in source.state_dict().items():
        if not key.startswith("task_head"):
            assert torch.equal(target.state_dict()[key], value), key

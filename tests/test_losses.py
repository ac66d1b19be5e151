"""Stage two's losses (task + lambda x hallucination, the LOSSES and TASKS registries) and its metrics, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from student_train import metrics as M
from student_train.losses import LOSSES, TASKS, HalluciNetLoss, hallucination_loss, task_loss


def test_registries_list_their_names() -> None:
    assert LOSSES.names() == ["cosine", "mse", "mse_sigmoid"]
    assert TASKS.names() == ["classification", "none", "regression"]
    assert [TASKS.get(t)(5).num_outputs for t in TASKS.names()] == [5, 0, 1]
    assert LOSSES.get("mse_sigmoid")().nonnegative and not LOSSES.get("mse")().nonnegative
    with pytest.raises(UserError, match="unknown task 'detection'; valid names: classification, none"):
        TASKS.get("detection")


def test_lambda_zero_is_exactly_the_task_loss() -> None:
    g = torch.Generator().manual_seed(0)
    outputs, h, t = torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 1, 0])
    parts = HalluciNetLoss("classification", "mse_sigmoid", 0.0)(outputs, h, labels, t)
    assert torch.equal(parts.total, torch.nn.functional.cross_entropy(outputs, labels))
    assert parts.hallucination > 0  # still reported


def test_mse_sigmoid_matches_hand_computation() -> None:
    h = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    t = torch.tensor([[0.0, 0.0], [1.0, 3.0]])
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    hand = ((s(0) - s(0)) ** 2 + (s(1) - s(0)) ** 2 + (s(2) - s(1)) ** 2 + (s(-1) - s(3)) ** 2) / 4
    assert hallucination_loss(h, t, "mse_sigmoid").item() == pytest.approx(hand, rel=1e-6)
    outputs, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    parts = HalluciNetLoss("classification", "mse_sigmoid", 50.0)(outputs, h, labels, t)
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert parts.total.item() == pytest.approx(ce + 50 * hand, rel=1e-6)


def test_mse_standardises_and_cosine_ignores_scale() -> None:
    t = torch.tensor([[3.0, 10.0]])
    mean, std = torch.tensor([1.0, 10.0]), torch.tensor([2.0, 5.0])
    assert hallucination_loss(torch.tensor([[1.0, 0.0]]), t, "mse", mean, std).item() == pytest.approx(0.0)
    assert hallucination_loss(5 * t, t, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    # back in the teacher's space, the standardised prediction is the target itself
    back = LOSSES.get("mse")().to_teacher_space(torch.tensor([[1.0, 0.0]]), mean, std)
    torch.testing.assert_close(back, t)
    with pytest.raises(UserError, match="needs the cache's feature mean and std"):
        hallucination_loss(t, t, "mse")
    with pytest.raises(ValueError, match="valid names"):
        hallucination_loss(t, t, "l1")


def test_task_losses_and_none() -> None:
    outputs = torch.tensor([[1.0], [3.0]])
    assert task_loss(outputs, torch.tensor([0.0, 1.0]), "regression").item() == pytest.approx((1 + 4) / 2)
    h, t = torch.ones(2, 3), torch.zeros(2, 3)
    parts = HalluciNetLoss("none", "mse_sigmoid", 2.0)(torch.zeros(2, 0), h, torch.zeros(2), t)
    assert parts.task.item() == 0.0 and parts.total.item() == pytest.approx(2 * (torch.sigmoid(h[0, 0]) - 0.5) ** 2)


def test_task_none_needs_lambda() -> None:
    with pytest.raises(ValueError, match="nothing to learn"):
        HalluciNetLoss("none", "mse_sigmoid", 0.0)
    with pytest.raises(ValueError, match="lambda must be >= 0"):
        HalluciNetLoss("classification", "mse_sigmoid", -1.0)


def test_rank_metrics_by_hand() -> None:
    assert M.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]; against [4, 3, 2, 1]
    x, y = np.array([1.0, 2.5, 2.5, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
    hand = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(
        ((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()
    )
    assert M.spearman([1, 2, 2, 3], [4, 3, 2, 1]) == pytest.approx(hand)
    assert M.mean_absolute_error(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(1.5)
    assert M.topk_accuracy(np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]]), np.array([2, 2]), 2) == pytest.approx(0.5)


def test_fidelity_r2_is_measured_against_a_reference_mean() -> None:
    teacher = np.array([[1.0, 0.0], [3.0, 2.0]])
    reference = np.array([1.0, 0.0])  # e.g. the train-set mean, not this split's
    # R² = 1 - SSE / sum((t - reference)^2): predicting the reference scores exactly 0
    assert M.fidelity(np.broadcast_to(reference, teacher.shape), teacher, reference)["r2"] == pytest.approx(0.0)
    pred = np.array([[1.0, 0.0], [2.0, 2.0]])
    hand = 1 - 1.0 / (0 + 0 + 4 + 4)
    assert M.fidelity(pred, teacher, reference)["r2"] == pytest.approx(hand)
    assert M.fidelity(teacher, teacher, reference) == pytest.approx({"cosine": 1.0, "r2": 1.0})

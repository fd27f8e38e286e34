"""The paper's loss terms against hand computations."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from s2f.train.losses import Speech2FaceLoss, distillation_loss, normalized_l2


def test_normalized_l2_ignores_scale_and_spans_zero_to_four() -> None:
    target = torch.randn(5, 32)
    assert normalized_l2(3.0 * target, target).item() < 1e-10
    assert math.isclose(normalized_l2(-target, target).item(), 4.0, rel_tol=1e-5)
    orthogonal = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert math.isclose(normalized_l2(*orthogonal).item(), 2.0, rel_tol=1e-6)


def test_distillation_is_cross_entropy_of_softened_distributions() -> None:
    student, teacher = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 3.0]])
    p = torch.softmax(teacher / 2.0, -1)
    expected = -(p * torch.log_softmax(student / 2.0, -1)).sum()
    assert math.isclose(distillation_loss(student, teacher, 2.0).item(), expected.item(), rel_tol=1e-6)
    # Minimised (at the target's entropy) when the student's logits equal the teacher's.
    entropy = -(p * p.log()).sum()
    assert math.isclose(distillation_loss(teacher, teacher, 2.0).item(), entropy.item(), rel_tol=1e-6)


def test_total_weights_the_terms_like_the_paper() -> None:
    torch.manual_seed(0)
    classifier, first_layer = nn.Linear(8, 5), nn.Linear(8, 3)
    predicted, target = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)
    total, terms = Speech2FaceLoss()(predicted, target, classifier, first_layer)
    assert set(terms) == {"l2", "l1", "distill"}
    l1 = (first_layer(predicted) - first_layer(target)).abs().sum(-1).mean()
    assert math.isclose(terms["l1"].item(), l1.item(), rel_tol=1e-5)
    expected = terms["l1"] + 0.025 * terms["l2"] + 200 * terms["distill"]
    assert math.isclose(total.item(), expected.item(), rel_tol=1e-6)
    total.backward()
    assert predicted.grad is not None and predicted.grad.abs().sum() > 0
    assert classifier.weight.grad is not None  # the loss module itself does not freeze; the system does

"""The training loss of Speech2Face (Oh et al., 2019, eq. 1).

``L = ||f_dec(v_f) - f_dec(v_s)||_1 + lambda1 ||v_f/|v_f| - v_s/|v_s| ||_2^2``
``    + lambda2 L_distill(f_VGG(v_f), f_VGG(v_s))``

where v_f is the teacher's face embedding, v_s the voice encoder's prediction, f_dec the face
decoder's first layer and f_VGG the teacher's classifier, both frozen. The paper found plain L1
on the features "slow and unstable"; the normalised L2 and the distillation through the
classifier are what make training work. Sums run over features; batches are averaged.

Example:
    >>> import torch
    >>> loss = Speech2FaceLoss()
    >>> target = torch.randn(4, 16)
    >>> terms = loss(target.clone(), target)
    >>> round(terms.total.item(), 6), sorted(terms.terms)
    (0.0, ['l2'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LossTerms", "Speech2FaceLoss", "distillation_loss", "normalized_l2"]

Layer = Callable[[torch.Tensor], torch.Tensor]


class LossTerms(NamedTuple):
    """The weighted total and each term before weighting, for logging."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


def normalized_l2(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between unit-normalised embeddings, averaged over the batch (0 to 4)."""
    difference = F.normalize(target.float(), dim=-1) - F.normalize(predicted.float(), dim=-1)
    return difference.pow(2).sum(dim=-1).mean()


def distillation_loss(predicted_logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the predicted class distribution against the target's, both softened by ``temperature``."""
    target_probs = F.softmax(target_logits.float() / temperature, dim=-1)
    predicted_log_probs = F.log_softmax(predicted_logits.float() / temperature, dim=-1)
    return -(target_probs * predicted_log_probs).sum(dim=-1).mean()


class Speech2FaceLoss(nn.Module):
    """The paper's total loss; terms whose frozen layer is not given are left out.

    Args:
        lambda_l2: Weight of the normalised L2 term (the paper: 0.025).
        lambda_distill: Weight of the distillation term (the paper: 200).
        temperature: Softmax temperature of the distillation (the paper: 2).
        lambda_l1: Weight of the L1 term through the decoder's first layer (the paper: 1).
    """

    def __init__(
        self,
        lambda_l2: float = 0.025,
        lambda_distill: float = 200.0,
        temperature: float = 2.0,
        lambda_l1: float = 1.0,
    ) -> None:
        super().__init__()
        self.lambda_l2 = lambda_l2
        self.lambda_distill = lambda_distill
        self.temperature = temperature
        self.lambda_l1 = lambda_l1

    def forward(
        self,
        predicted: torch.Tensor,
        target: torch.Tensor,
        classifier: Layer | None = None,
        decoder_first_layer: Layer | None = None,
        center: torch.Tensor | None = None,
    ) -> LossTerms:
        """Args:
        predicted: The voice encoder's embeddings v_s [B, D].
        target: The teacher's face embeddings v_f [B, D].
        classifier: The teacher's frozen classifier (fc8), for the distillation term.
        decoder_first_layer: The decoder's frozen first layer, for the L1 term.
        center: A fixed point [D] (the training mean; see ``Speech2FaceSystem(center_embeddings=True)``):
            the normalised L2 term then adds the same distance measured from it; the paper: none.
        """
        predicted = predicted.float()
        target = target.float()
        terms = {"l2": normalized_l2(predicted, target)}
        if center is not None:
            # The paper's term keeps the embedding's place on the teacher's cone; the centered one
            # gives its direction away from the average face the same weight.
            centered = normalized_l2(predicted - center.float(), target - center.float())
            terms = {"l2": terms["l2"] + centered, "l2_centered": centered}
        total = self.lambda_l2 * terms["l2"]
        if decoder_first_layer is not None and self.lambda_l1:
            with torch.no_grad():
                target_decoded = decoder_first_layer(target)
            terms["l1"] = (decoder_first_layer(predicted) - target_decoded).abs().sum(dim=-1).mean()
            total = total + self.lambda_l1 * terms["l1"]
        if classifier is not None and self.lambda_distill:
            with torch.no_grad():
                target_logits = classifier(target)
            terms["distill"] = distillation_loss(classifier(predicted), target_logits, self.temperature)
            total = total + self.lambda_distill * terms["distill"]
        return LossTerms(total, terms)

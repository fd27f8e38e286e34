"""Feature similarity between predicted and true face embeddings, as the paper's Table 1 reports it.

Three distances per (prediction, true face) pair, each summarised as mean and standard deviation over
the clips: the angle in degrees between the two vectors (from their cosine), the L2 distance of the
unit-normalised vectors, and the L1 distance of the unit-normalised vectors. Normalising first makes
the numbers comparable across teachers, whatever the scale of their features.

Example:
    >>> import torch
    >>> same = torch.eye(3)
    >>> summary = feature_similarity(same, same)
    >>> summary["angle_deg"]["mean"], summary["l2"]["mean"], summary["l1"]["mean"]
    (0.0, 0.0, 0.0)
    >>> round(feature_similarity(same, same.roll(1, dims=0))["angle_deg"]["mean"], 6)
    90.0
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...model.angles import angles_deg

__all__ = [
    "DISTANCES",
    "Distance",
    "angles_deg",
    "feature_similarity",
    "paired_distances",
    "pairwise_distance",
    "unit_distances",
]

Distance = Literal["cos", "l2", "l1"]
DISTANCES: tuple[Distance, ...] = ("cos", "l2", "l1")


def paired_distances(a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Angle (degrees), L2 and L1 of the unit vectors, for each row pair of ``a`` and ``b`` [N, D]."""
    if a.shape != b.shape:
        raise ValueError(f"predicted {tuple(a.shape)} and true {tuple(b.shape)} embeddings differ in shape")
    unit_a, unit_b = F.normalize(a.double(), dim=-1), F.normalize(b.double(), dim=-1)
    return {
        "angle_deg": angles_deg(a, b),
        "l2": (unit_a - unit_b).norm(dim=-1).float(),
        "l1": (unit_a - unit_b).abs().sum(-1).float(),
    }


def feature_similarity(predicted: torch.Tensor, true: torch.Tensor) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each paired distance over the rows of ``predicted`` and ``true``.

    Args:
        predicted: Embeddings predicted from voices [N, D].
        true: The teacher's embeddings of the same clips' faces [N, D].

    Returns:
        ``{"angle_deg" | "l2" | "l1": {"mean": float, "std": float}}``, plus ``"clips"``: N.
    """
    summary: dict[str, dict[str, float]] = {}
    for name, values in paired_distances(predicted, true).items():
        std = float(values.std(unbiased=False)) if len(values) > 1 else 0.0
        summary[name] = {"mean": float(values.mean()), "std": std}
    return summary


def pairwise_distance(queries: torch.Tensor, items: torch.Tensor, metric: Distance) -> torch.Tensor:
    """Distance [Q, G] between every query row and every item row; smaller is closer.

    ``cos`` gives 1 - cosine similarity; ``l2`` and ``l1`` are measured between unit vectors, so all
    three rank the same way when the embeddings are all of one length.
    """
    unit_q, unit_g = F.normalize(queries.double(), dim=-1), F.normalize(items.double(), dim=-1)
    return unit_distances(unit_q, unit_g, metric).float()


def unit_distances(unit_queries: torch.Tensor, unit_items: torch.Tensor, metric: Distance) -> torch.Tensor:
    """:func:`pairwise_distance` of rows that are already unit vectors, in their own dtype and device."""
    if metric == "cos":
        return 1.0 - unit_queries @ unit_items.T
    if metric == "l2":
        return torch.cdist(unit_queries, unit_items, p=2.0)
    if metric == "l1":
        return torch.cdist(unit_queries, unit_items, p=1.0)
    raise ConfigError(f"unknown distance {metric!r}; use one of {', '.join(DISTANCES)}")

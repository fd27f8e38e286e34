"""The angle between face embeddings: the one similarity every part of s2f reports.

Training logs it, the evaluation summarises it (with L2 and L1 of the unit vectors, see
:mod:`s2f.eval.metrics.similarity`), the report draws its histogram and the benchmarks compare encoders by it.

Example:
    >>> import torch
    >>> angles_deg(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    tensor([45.])
    >>> angles_deg(torch.eye(2), torch.eye(2), pairwise=True)
    tensor([[ 0., 90.],
            [90.,  0.]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["angles_deg"]


def angles_deg(a: torch.Tensor, b: torch.Tensor, *, pairwise: bool = False) -> torch.Tensor:
    """Angles in degrees between embeddings, from their cosine (float32 result).

    The cosine is taken in float64: near 0 degrees, float32 rounding of the cosine alone moves the
    angle by a few hundredths of a degree, as much as the differences between teachers' neighbours.

    Args:
        a: Embeddings [N, D].
        b: Embeddings [N, D] (paired) or [M, D] (``pairwise``).
        pairwise: Every row of ``a`` against every row of ``b`` [N, M], instead of row i against row i [N].
    """
    unit_a, unit_b = F.normalize(a.double(), dim=-1), F.normalize(b.double(), dim=-1)
    cosine = unit_a @ unit_b.T if pairwise else (unit_a * unit_b).sum(-1)
    return torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0))).float()

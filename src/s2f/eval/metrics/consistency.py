"""Same-speaker consistency: are two clips of one speaker predicted closer than clips of two speakers?

Two numbers, from the cosine similarity of every pair of predicted embeddings:

- rank-1 rate: for each clip whose speaker has another clip, whether the nearest *other* clip is
  the same speaker's. Chance is the share of the other clips that are that speaker's, averaged. A
  tie counts against the clip, as in retrieval: it is a hit only when a clip of its speaker is
  strictly nearer than every other speaker's, so predictions that are all alike score 0, not the
  luck of the clips' order.
- equal error rate (EER): the error where a threshold on the pair's similarity accepts as many
  different-speaker pairs as it rejects same-speaker pairs (a verification score; chance 0.5).

Example:
    >>> import torch
    >>> scores = torch.tensor([0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 0.65])
    >>> same = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    >>> equal_error_rate(scores, same)
    0.25
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["equal_error_rate", "speaker_consistency"]


def equal_error_rate(scores: torch.Tensor, same: torch.Tensor) -> float:
    """The EER of a similarity ``scores`` [P] meant to be high where ``same`` [P] is true.

    Read off the ROC (:func:`torchmetrics.functional.classification.binary_roc`) where the false
    positive rate crosses the false negative rate, interpolated between the two ROC points either
    side of the crossing.
    """
    # Imported here: torchmetrics takes seconds to import, and `s2f eval --help` imports this module.
    from torchmetrics.functional.classification import binary_roc

    if same.all() or not same.any():
        raise ValueError("the EER needs both same-speaker and different-speaker pairs")
    fpr, tpr, _ = binary_roc(scores.double(), same.long(), thresholds=None)
    fnr = 1.0 - tpr
    gap = fnr - fpr  # starts at 1 (accept nothing), ends at -1 (accept everything)
    after = int(torch.nonzero(gap <= 0)[0])
    if after == 0 or gap[after] == 0:
        return float(fpr[after])
    before = after - 1
    weight = gap[before] / (gap[before] - gap[after])
    return float(fpr[before] + weight * (fpr[after] - fpr[before]))


def speaker_consistency(embeddings: torch.Tensor, speakers: Sequence[str]) -> dict[str, float]:
    """Rank-1 rate and EER of same-speaker vs different-speaker predictions, with chance beside each.

    Args:
        embeddings: Predicted embeddings [N, D], several clips per speaker.
        speakers: The speaker of each row.

    Returns:
        ``rank1``, ``rank1_chance``, ``eer``, ``eer_chance`` (0.5), ``clips`` (those with a second
        clip of their speaker), ``same_pairs`` and ``different_pairs``.

    Raises:
        ValueError: When no speaker has two clips, or every clip is one speaker's.
    """
    labels = list(speakers)
    ids = {s: i for i, s in enumerate(dict.fromkeys(labels))}
    speaker = torch.tensor([ids[s] for s in labels])
    same = speaker[:, None] == speaker[None, :]
    others = ~torch.eye(len(labels), dtype=torch.bool)
    has_partner = (same & others).any(dim=1)
    if not has_partner.any():
        raise ValueError("same-speaker consistency needs a speaker with at least two clips")
    if same.all():
        raise ValueError("same-speaker consistency needs clips of at least two speakers")
    unit = F.normalize(embeddings.double(), dim=-1)
    similarity = (unit @ unit.T).masked_fill(~others, float("-inf"))
    nearest_same = similarity.masked_fill(~same, float("-inf")).max(dim=1).values
    nearest_other = similarity.masked_fill(same, float("-inf")).max(dim=1).values
    hits = (nearest_same > nearest_other)[has_partner]
    partners = (same & others).sum(dim=1)[has_partner].double()
    chance = (partners / (len(labels) - 1)).mean()
    upper = torch.triu(others, diagonal=1)
    return {
        "rank1": float(hits.double().mean()),
        "rank1_chance": float(chance),
        "eer": equal_error_rate(similarity[upper], same[upper]),
        "eer_chance": 0.5,
        "clips": float(has_partner.sum()),
        "same_pairs": float((same & upper).sum()),
        "different_pairs": float((~same & upper).sum()),
    }

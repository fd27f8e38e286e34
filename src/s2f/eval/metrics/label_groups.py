"""Every voice metric again for the clips of each metadata label group, so that bias shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .retrieval import recall_at_k
from .similarity import feature_similarity

if TYPE_CHECKING:
    from ..data import HeldOut

__all__ = ["metrics_by_label_group"]


def metrics_by_label_group(
    held: HeldOut,
    predicted: torch.Tensor,
    gallery: torch.Tensor,
    gallery_speakers: list[str],
    demographic_labels: dict[str, list[Any]] | None,
    max_groups: int = 20,
) -> dict[str, Any]:
    """Each metric again for the clips of each metadata label group (same full gallery, same chance)."""
    sliced: dict[str, Any] = {}
    keys = sorted({k for m in held.metadata for k, v in m.items() if isinstance(v, str | bool | int)})
    for key in keys:
        values = [str(m.get(key, "(missing)")) for m in held.metadata]
        groups = sorted(set(values))
        if not 2 <= len(groups) <= max_groups:
            continue
        sliced[key] = {}
        for group in groups:
            rows = [i for i, v in enumerate(values) if v == group]
            speakers = [held.speaker_ids[i] for i in rows]
            entry: dict[str, Any] = {
                "clips": len(rows),
                "speakers": len(set(speakers)),
                "similarity": feature_similarity(predicted[rows], held.embeddings[rows]),
                "retrieval_cos": recall_at_k(
                    predicted[rows], speakers, gallery, gallery_speakers, metric="cos", ks=(1, 5, 10)
                ),
            }
            if demographic_labels is not None:
                pairs = [(demographic_labels["gender_true"][i], demographic_labels["gender_s2f"][i]) for i in rows]
                entry["gender_agreement"] = float(np.mean([a == b for a, b in pairs]))
            sliced[key][group] = entry
    return sliced

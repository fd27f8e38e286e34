"""1:2 matching: is the face predicted from a voice nearer to its speaker's face than to an impostor's?

Wen et al. (NeurIPS 2019, cmu-mlsp/reconstructing_faces_from_voices) score a voice-to-face model by
1:2 matching in a fixed face-embedding space: given the face generated from a voice, a true face of the
speaker and a face of an impostor, the generated face should be nearer (cosine) to the true one;
chance is 50 %. Here every held-out clip's prediction is compared with every other held-out identity
as the impostor (all pairs, no sampling); each identity's face is the mean embedding of its faces, as
in the identity-mean galleries. A tie counts as half a success.

Pairs that share a speaker are not independent, so the confidence interval resamples query speakers
(a cluster bootstrap): each resample draws the held-out speakers with replacement and recomputes the
accuracy over all their pairs; the interval is the central 95 % of the resamples.

The same-gender variant keeps only impostors whose recorded gender is the speaker's: a model that only
reads gender from the voice scores 50 % there.

Example:
    >>> import torch
    >>> faces = torch.eye(3)
    >>> result = matching_accuracy(faces, ["a", "b", "c"], faces, ["a", "b", "c"])
    >>> result["accuracy"], result["pairs"], result["chance"]
    (1.0, 6, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .galleries import identity_means

__all__ = ["WEN_SOURCE", "matching_accuracy"]

WEN_SOURCE = "Wen et al., Reconstructing faces from voices, NeurIPS 2019 (cmu-mlsp/reconstructing_faces_from_voices)"


def matching_accuracy(
    queries: torch.Tensor,
    query_speakers: Sequence[str],
    faces: torch.Tensor,
    face_speakers: Sequence[str],
    *,
    groups: Mapping[str, str] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk_size: int = 1024,
) -> dict[str, Any]:
    """1:2 matching accuracy over every (query, impostor identity) pair, with a cluster-bootstrap interval.

    Args:
        queries: Predicted embeddings [Q, D].
        query_speakers: The speaker of each query.
        faces: True face embeddings [N, D]; each speaker's mean is its face.
        face_speakers: The speaker of each face.
        groups: When given, a label per speaker (e.g. gender): impostors must share the query speaker's.
        resamples: Bootstrap resamples of the query speakers.
        confidence: Coverage of the interval.
        seed: Seed of the resamples.
        chunk_size: Queries compared at once.

    Returns:
        ``accuracy``, ``ci_low``, ``ci_high``, ``chance`` (0.5), ``pairs``, ``queries`` (with at least
        one impostor) and ``speakers``.
    """
    means, names = identity_means(faces, face_speakers)
    index = {name: i for i, name in enumerate(names)}
    if any(s not in index for s in query_speakers):
        raise ConfigError("1:2 matching needs a face of every query's speaker")
    own = torch.tensor([index[s] for s in query_speakers], dtype=torch.long)
    if groups is not None:
        labels = {label: i for i, label in enumerate(sorted({groups[n] for n in names}))}
        group = torch.tensor([labels[groups[n]] for n in names])
    unit_means = F.normalize(means.double(), dim=-1)
    wins = torch.zeros(len(names), dtype=torch.float64)  # per query speaker: successes, ties as halves
    pairs = torch.zeros(len(names), dtype=torch.float64)
    for start in range(0, len(queries), chunk_size):
        mine = own[start : start + chunk_size]
        similarity = F.normalize(queries[start : start + chunk_size].double(), dim=-1) @ unit_means.T
        own_similarity = similarity.gather(1, mine[:, None])
        impostor = torch.ones_like(similarity, dtype=torch.bool)
        impostor[torch.arange(len(mine)), mine] = False
        if groups is not None:
            impostor &= group[None, :] == group[mine][:, None]
        score = (own_similarity > similarity).double() + 0.5 * (own_similarity == similarity).double()
        wins.index_add_(0, mine, (score * impostor).sum(1))
        pairs.index_add_(0, mine, impostor.sum(1).double())
    total = float(pairs.sum())
    if total == 0:
        raise ConfigError("1:2 matching needs at least one impostor for some query (two identities, same group)")
    low, high = _cluster_interval(wins.numpy(), pairs.numpy(), resamples, confidence, seed)
    return {
        "accuracy": float(wins.sum()) / total,
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "chance": 0.5,
        "pairs": int(total),
        "queries": int((pairs[own] > 0).sum()),
        "speakers": int((pairs > 0).sum()),
    }


def _cluster_interval(
    wins: np.ndarray, pairs: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the accuracy when the speakers with pairs are drawn again with replacement."""
    present = pairs > 0
    wins, pairs = wins[present], pairs[present]
    if resamples < 1 or len(pairs) < 2:
        accuracy = float(wins.sum() / pairs.sum())
        return accuracy, accuracy
    counts = np.random.default_rng(seed).multinomial(len(pairs), np.full(len(pairs), 1 / len(pairs)), size=resamples)
    accuracies = (counts @ wins) / np.maximum(counts @ pairs, 1e-12)
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(accuracies, tail)), float(np.percentile(accuracies, 100 - tail))

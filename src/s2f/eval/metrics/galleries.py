"""Identity-mean galleries of N identities, averaged over R random draws: the retrieval protocol of SF2F.

SF2F (Bai et al., ACM MM 2022; ``utils/s2f_evaluator.py`` of BAI-Yeqi/SF2F_PyTorch) ranks a gallery of
100 identities, each represented by the mean embedding of all its faces, and reports Recall@1/2/5/10/20/50
by cosine, L1 and L2. Here each of R draws picks N held-out identities at random (seeded), the gallery
holds their mean true face embeddings, and every held-out clip of a drawn identity is a query. Recall
is averaged over the draws and its spread (standard deviation over the draws) printed beside it;
chance is exactly K / N. When fewer than N identities are held out, N is capped at their number (the
result says so), every draw holds all of them, and the spread is zero.

The closeness of each query to its own identity's mean (cosine similarity, and L1 / L2 of unit
vectors) is reported too, as SF2F reports it.

Example:
    >>> import torch
    >>> faces = torch.eye(4).repeat_interleave(2, 0)
    >>> speakers = [s for s in "aabbccdd"]
    >>> result = identity_gallery_recall(faces, speakers, faces, speakers, gallery_size=3, draws=4, ks=(1, 2))
    >>> result["cos"]["R@1"], result["cos"]["chance@1"], result["gallery_size"], result["capped"]
    (1.0, 0.3333333333333333, 3, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .retrieval import gallery_ks, own_ranks
from .similarity import DISTANCES, Distance

__all__ = ["GALLERY_KS", "SF2F_SOURCE", "identity_gallery_recall", "identity_means", "own_mean_similarity"]

GALLERY_KS = (1, 2, 5, 10, 20, 50)
SF2F_SOURCE = "Bai et al., SF2F, ACM MM 2022 (BAI-Yeqi/SF2F_PyTorch, utils/s2f_evaluator.py)"


def identity_means(embeddings: torch.Tensor, speakers: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
    """The mean embedding [S, D] of each speaker's rows, and the speakers in sorted order.

    Example:
        >>> means, names = identity_means(torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]]), ["b", "b", "a"])
        >>> names, means.tolist()
        (['a', 'b'], [[0.0, 5.0], [2.0, 1.0]])
    """
    names = sorted(set(speakers))
    index = {name: i for i, name in enumerate(names)}
    rows = torch.tensor([index[s] for s in speakers], dtype=torch.long)
    totals = torch.zeros(len(names), embeddings.shape[1], dtype=torch.float64).index_add_(0, rows, embeddings.double())
    counts = torch.bincount(rows, minlength=len(names)).double()
    return (totals / counts[:, None]).float(), names


def own_mean_similarity(queries: torch.Tensor, own_means: torch.Tensor) -> dict[str, float]:
    """Mean cosine similarity of each query to its own identity mean, and mean L1 / L2 of the unit vectors."""
    unit_q, unit_m = F.normalize(queries.double(), dim=-1), F.normalize(own_means.double(), dim=-1)
    return {
        "cos": float((unit_q * unit_m).sum(-1).mean()),
        "l1": float((unit_q - unit_m).abs().sum(-1).mean()),
        "l2": float((unit_q - unit_m).norm(dim=-1).mean()),
    }


def identity_gallery_recall(
    queries: torch.Tensor,
    query_speakers: Sequence[str],
    faces: torch.Tensor,
    face_speakers: Sequence[str],
    *,
    gallery_size: int = 100,
    draws: int = 10,
    ks: Sequence[int] = GALLERY_KS,
    metrics: Sequence[Distance] = DISTANCES,
    seed: int = 0,
) -> dict[str, Any]:
    """Recall@K against identity-mean galleries of ``gallery_size`` identities, mean and spread over ``draws``.

    Args:
        queries: Predicted embeddings [Q, D], one per clip.
        query_speakers: The speaker of each query.
        faces: True face embeddings [N, D] whose per-speaker means make the galleries.
        face_speakers: The speaker of each face (every query speaker must have one).
        gallery_size: Identities per gallery (N); capped at the number of identities there are.
        draws: Random galleries (R); the same ``seed`` draws the same identities for every set of queries.
        ks: The K values; those above N are left out.
        metrics: Distances to rank by.
        seed: Seed of the draws.

    Returns:
        ``identities_available``, ``gallery_size`` (N used), ``capped``, ``draws``, ``queries_per_draw``
        (mean), ``similarity`` (:func:`own_mean_similarity` over all queries) and, per metric,
        ``R@K`` (mean over draws), ``R@K_std`` and ``chance@K`` = K / N.
    """
    if gallery_size < 2 or draws < 1:
        raise ConfigError(f"identity galleries need gallery_size >= 2 and draws >= 1, got {gallery_size}, {draws}")
    means, names = identity_means(faces, face_speakers)
    index = {name: i for i, name in enumerate(names)}
    missing = sorted(set(query_speakers) - set(index))
    if missing:
        raise ConfigError(f"queries of speakers with no face to average: {', '.join(missing[:5])}")
    own = torch.tensor([index[s] for s in query_speakers], dtype=torch.long)
    size = min(gallery_size, len(names))
    ks = gallery_ks(size, ks)
    rng = np.random.default_rng(seed)
    recalls: dict[str, list[list[float]]] = {metric: [] for metric in metrics}
    counts = []
    for _ in range(draws if size < len(names) else 1):  # all identities in every draw: one draw says it all
        drawn = np.sort(rng.choice(len(names), size=size, replace=False))
        position = torch.full((len(names),), -1, dtype=torch.long)
        position[torch.from_numpy(drawn)] = torch.arange(size)
        chosen = position[own] >= 0
        if not chosen.any():  # identities with faces but no voice to query them
            continue
        counts.append(int(chosen.sum()))
        for metric in metrics:
            ranks = own_ranks(queries[chosen], position[own[chosen]], means[drawn], metric=metric)
            recalls[metric].append([float((ranks < k).double().mean()) for k in ks])
    if not counts:
        raise ConfigError("no draw held an identity with a query; give queries of the gallery's speakers")
    result: dict[str, Any] = {
        "identities_available": len(names),
        "gallery_size": size,
        "capped": size < gallery_size,
        "draws": draws,
        "distinct_draws": len(counts),
        "queries_per_draw": float(np.mean(counts)),
        "similarity": own_mean_similarity(queries, means[own]),
    }
    for metric in metrics:
        values = np.array(recalls[metric])
        result[metric] = {}
        for column, k in enumerate(ks):
            result[metric][f"R@{k}"] = float(values[:, column].mean())
            result[metric][f"R@{k}_std"] = float(values[:, column].std())
            result[metric][f"chance@{k}"] = k / size
    return result

"""Speech -> face retrieval: does a voice's predicted embedding find its speaker's face in a gallery?

Protocol (stated in every report): the gallery holds one face per held-out speaker, the teacher
embedding of that speaker's first clip by clip id (deterministic, independent of shard order); the
queries are the embeddings predicted from every held-out clip's voice. A query is a hit at K when
its own speaker's face is among the K gallery faces closest to it. With exactly one right face in a
gallery of G, a ranking that ignores the voice hits with probability K / G: the exact chance level.

Ranks come from one chunked similarity matrix per batch of queries (:func:`own_ranks`), so a gallery of
thousands of faces and tens of thousands of queries take about as long as their matrix product
(``benchmarks/retrieval_scale.py``).

Example:
    >>> import torch
    >>> faces = torch.eye(4)
    >>> result = recall_at_k(faces, ["a", "b", "c", "d"], faces, ["a", "b", "c", "d"], metric="cos", ks=(1, 2))
    >>> result["R@1"], result["chance@1"], result["R@2"], result["chance@2"]
    (1.0, 0.25, 1.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .gallery_rule import wins_gallery_place
from .similarity import Distance, pairwise_distance, unit_distances

__all__ = [
    "CHUNK_ELEMENTS",
    "PAPER_KS",
    "choose_gallery",
    "gallery_ks",
    "nearest_gallery",
    "own_ranks",
    "rank_gallery",
    "recall_at_k",
]

PAPER_KS = (1, 2, 5, 10, 25, 50, 100)
CHUNK_ELEMENTS = 2**24
"""Distances held at once by :func:`own_ranks` by default (128 MiB in float64)."""


def gallery_ks(gallery_size: int, ks: Sequence[int] = PAPER_KS) -> list[int]:
    """The K values that fit a gallery of ``gallery_size`` faces (K above it would always hit)."""
    return [k for k in ks if k <= gallery_size]


def choose_gallery(clip_ids: Sequence[str], speaker_ids: Sequence[str]) -> dict[str, int]:
    """Index of the gallery clip of each speaker: the one with the smallest clip id.

    Example:
        >>> choose_gallery(["c2", "c1", "d9"], ["s", "s", "t"])
        {'s': 1, 't': 2}
    """
    chosen: dict[str, int] = {}
    for index, (clip, speaker) in enumerate(zip(clip_ids, speaker_ids, strict=True)):
        if wins_gallery_place(clip, clip_ids[chosen[speaker]] if speaker in chosen else None):
            chosen[speaker] = index
    return dict(sorted(chosen.items()))


def rank_gallery(queries: torch.Tensor, gallery: torch.Tensor, metric: Distance) -> torch.Tensor:
    """Gallery indices [Q, G] of each query's faces, nearest first."""
    return pairwise_distance(queries, gallery, metric).argsort(dim=1, stable=True)


def nearest_gallery(queries: torch.Tensor, gallery: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [Q, k] of each query's k nearest gallery faces by cosine distance."""
    return rank_gallery(queries, gallery, "cos")[:, :k]


def own_ranks(
    queries: torch.Tensor,
    own: torch.Tensor,
    gallery: torch.Tensor,
    *,
    metric: Distance = "cos",
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The rank [Q] of each query's own gallery item: 0 when it is the nearest.

    The rank counts the gallery items nearer to the query than its own item, and those exactly as
    near (a tie counts against the query, so a constant prediction cannot score above chance by the
    order of the gallery). Distances are computed a chunk of queries at a time, so memory stays at
    ``chunk_size`` x gallery size whatever the number of queries (by default about 16 M distances:
    3,355 queries against 5,000 faces; larger chunks keep the matrix product efficient).

    Args:
        queries: Embeddings [Q, D], on any device (the gallery is moved to it).
        own: Index [Q] of each query's own item in the gallery.
        gallery: Items [G, D].
        metric: ``"cos"``, ``"l2"`` or ``"l1"`` of unit vectors.
        chunk_size: Queries scored at once (None: :data:`CHUNK_ELEMENTS` / gallery size).
        dtype: Precision of the distances; float64 gives exactly the distances of
            :func:`~s2f.eval.metrics.similarity.pairwise_distance`, float32 is about twice as fast on a CPU.

    Example:
        >>> gallery = torch.eye(3)
        >>> own_ranks(torch.tensor([[1.0, 0.1, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([0, 2]), gallery).tolist()
        [0, 2]
    """
    unit_gallery = F.normalize(gallery.to(device=queries.device, dtype=dtype), dim=-1)
    own = own.to(queries.device)
    chunk_size = chunk_size or max(256, CHUNK_ELEMENTS // max(len(gallery), 1))
    ranks = []
    for start in range(0, len(queries), chunk_size):
        unit_queries = F.normalize(queries[start : start + chunk_size].to(dtype), dim=-1)
        # Rounded to float32 as pairwise_distance does, so both paths rank on the same numbers.
        distances = unit_distances(unit_queries, unit_gallery, metric).float()
        own_distance = distances.gather(1, own[start : start + chunk_size, None])
        ranks.append((distances <= own_distance).sum(dim=1) - 1)
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def recall_at_k(
    queries: torch.Tensor,
    query_speakers: Sequence[str],
    gallery: torch.Tensor,
    gallery_speakers: Sequence[str],
    *,
    metric: Distance = "cos",
    ks: Sequence[int] = PAPER_KS,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """Recall at each K of the queries against the gallery, with the exact chance level beside it.

    A query hits at K when its speaker's face ranks among the K nearest (:func:`own_ranks`): one
    chunked matrix product and a comparison per chunk, instead of a sort per query.

    Args:
        queries: Predicted embeddings [Q, D].
        query_speakers: The speaker of each query.
        gallery: One true face embedding per speaker [G, D].
        gallery_speakers: The speaker of each gallery face (each exactly once).
        metric: ``"cos"``, ``"l2"`` or ``"l1"`` (see :func:`~s2f.eval.metrics.similarity.pairwise_distance`).
        ks: The K values; those above the gallery size are left out.
        chunk_size: Queries scored at once (see :func:`own_ranks`).
        dtype: Precision of the distances (see :func:`own_ranks`).

    Returns:
        ``{"R@K": recall in [0, 1], "chance@K": K / G, ...}`` plus ``gallery_size`` and ``queries``.

    Raises:
        ConfigError: When a gallery speaker repeats or a query's speaker has no face in the gallery.
    """
    if len(set(gallery_speakers)) != len(gallery_speakers):
        raise ConfigError("the gallery must hold exactly one face per speaker")
    position = {speaker: index for index, speaker in enumerate(gallery_speakers)}
    missing = sorted({s for s in query_speakers if s not in position})
    if missing:
        raise ConfigError(f"queries of speakers with no face in the gallery: {', '.join(missing[:5])}")
    num_queries, size = len(query_speakers), len(gallery_speakers)
    own = torch.tensor([position[s] for s in query_speakers], dtype=torch.long)
    ranks = own_ranks(queries, own, gallery, metric=metric, chunk_size=chunk_size, dtype=dtype).cpu()
    result: dict[str, float] = {"gallery_size": float(size), "queries": float(num_queries)}
    for k in gallery_ks(size, ks):
        result[f"R@{k}"] = int((ranks < k).sum()) / num_queries if num_queries else 0.0
        result[f"chance@{k}"] = k / size
    return result

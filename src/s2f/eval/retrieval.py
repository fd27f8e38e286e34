"""Speech -> face retrieval: does a voice's predicted embedding find its speaker's face in a gallery?

Protocol (stated in every report): the gallery holds one face per held-out speaker, the teacher
embedding of that speaker's first clip by clip id (deterministic, independent of shard order); the
queries are the embeddings predicted from every held-out clip's voice. A query is a hit at K when
its own speaker's face is among the K gallery faces closest to it. With exactly one right face in a
gallery of G, a ranking that ignores the voice hits with probability K / G: the exact chance level.

Ranking and recall come from :class:`torchmetrics.retrieval.RetrievalRecall`.

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

from .similarity import Distance, pairwise_distance

__all__ = ["PAPER_KS", "choose_gallery", "gallery_ks", "nearest_gallery", "rank_gallery", "recall_at_k"]

PAPER_KS = (1, 2, 5, 10, 25, 50, 100)


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
        if speaker not in chosen or clip < clip_ids[chosen[speaker]]:
            chosen[speaker] = index
    return dict(sorted(chosen.items()))


def rank_gallery(queries: torch.Tensor, gallery: torch.Tensor, metric: Distance) -> torch.Tensor:
    """Gallery indices [Q, G] of each query's faces, nearest first."""
    return pairwise_distance(queries, gallery, metric).argsort(dim=1, stable=True)


def nearest_gallery(queries: torch.Tensor, gallery: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [Q, k] of each query's k nearest gallery faces by cosine distance."""
    return rank_gallery(queries, gallery, "cos")[:, :k]


def recall_at_k(
    queries: torch.Tensor,
    query_speakers: Sequence[str],
    gallery: torch.Tensor,
    gallery_speakers: Sequence[str],
    *,
    metric: Distance = "cos",
    ks: Sequence[int] = PAPER_KS,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Recall at each K of the queries against the gallery, with the exact chance level beside it.

    Args:
        queries: Predicted embeddings [Q, D].
        query_speakers: The speaker of each query.
        gallery: One true face embedding per speaker [G, D].
        gallery_speakers: The speaker of each gallery face (each exactly once).
        metric: ``"cos"``, ``"l2"`` or ``"l1"`` (see :func:`~s2f.eval.similarity.pairwise_distance`).
        ks: The K values; those above the gallery size are left out.
        chunk_size: Queries scored at once.

    Returns:
        ``{"R@K": recall in [0, 1], "chance@K": K / G, ...}`` plus ``gallery_size`` and ``queries``.

    Raises:
        ValueError: When a gallery speaker repeats or a query's speaker has no face in the gallery.
    """
    # Imported here: torchmetrics takes seconds to import, and `s2f eval --help` imports this module.
    from torchmetrics.retrieval import RetrievalRecall

    if len(set(gallery_speakers)) != len(gallery_speakers):
        raise ValueError("the gallery must hold exactly one face per speaker")
    position = {speaker: index for index, speaker in enumerate(gallery_speakers)}
    missing = sorted({s for s in query_speakers if s not in position})
    if missing:
        raise ValueError(f"queries of speakers with no face in the gallery: {', '.join(missing[:5])}")
    num_queries, size = len(query_speakers), len(gallery_speakers)
    own = torch.tensor([position[s] for s in query_speakers])
    ks = gallery_ks(size, ks)
    hits = dict.fromkeys(ks, 0.0)
    # torchmetrics keeps every score it is given; chunks of queries bound the memory to chunk x gallery.
    for start in range(0, num_queries, chunk_size):
        stop = min(start + chunk_size, num_queries)
        # It also counts an item as retrieved only when its score is positive: a positive score that
        # falls as the distance grows keeps the ranking and satisfies it.
        scores = 1.0 / (1.0 + pairwise_distance(queries[start:stop], gallery, metric).double())
        target = torch.zeros_like(scores, dtype=torch.bool)
        target[torch.arange(stop - start), own[start:stop]] = True
        indexes = torch.arange(stop - start).unsqueeze(1).expand_as(scores)
        for k in ks:
            recall = RetrievalRecall(top_k=k)(scores.flatten(), target.flatten(), indexes=indexes.flatten())
            hits[k] += float(recall) * (stop - start)
    result: dict[str, float] = {"gallery_size": float(size), "queries": float(num_queries)}
    for k in ks:
        result[f"R@{k}"] = hits[k] / num_queries
        result[f"chance@{k}"] = k / size
    return result

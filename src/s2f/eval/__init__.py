"""The paper's evaluation (feature similarity, retrieval, consistency, craniofacial and demographic agreement)
and the protocols of later work (SF2F's identity-mean galleries, Wen et al.'s 1:2 matching, an attribute-only
baseline, an independent evaluator network, an identity score).

:func:`evaluate` runs all of it on one split of a shard root and writes ``metrics.json`` and a
self-contained ``report.html``; ``s2f eval`` is its command line. The metric functions work on plain
tensors, so they can be used on their own.
"""

from __future__ import annotations

from .context import EvalOptions
from .metrics.attribute_baseline import attribute_predictions
from .metrics.consistency import equal_error_rate, speaker_consistency
from .metrics.craniofacial import MEASUREMENTS, correlate, measure
from .metrics.galleries import identity_gallery_recall, identity_means
from .metrics.identity_score import identity_scores
from .metrics.matching import matching_accuracy
from .metrics.retrieval import PAPER_KS, choose_gallery, own_ranks, recall_at_k
from .metrics.similarity import feature_similarity, pairwise_distance
from .runner import EvalResult, evaluate

__all__ = [
    "MEASUREMENTS",
    "PAPER_KS",
    "EvalOptions",
    "EvalResult",
    "attribute_predictions",
    "choose_gallery",
    "correlate",
    "equal_error_rate",
    "evaluate",
    "feature_similarity",
    "identity_gallery_recall",
    "identity_means",
    "identity_scores",
    "matching_accuracy",
    "measure",
    "own_ranks",
    "pairwise_distance",
    "recall_at_k",
    "speaker_consistency",
]

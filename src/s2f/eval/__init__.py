"""The paper's evaluation: feature similarity, retrieval, consistency, craniofacial and demographic agreement.

:func:`evaluate` runs all of it on one split of a shard root and writes ``metrics.json`` and a
self-contained ``report.html``; ``s2f eval`` is its command line. The metric functions work on plain
tensors, so they can be used on their own.
"""

from __future__ import annotations

from .consistency import equal_error_rate, speaker_consistency
from .craniofacial import MEASUREMENTS, correlate, measure
from .retrieval import PAPER_KS, choose_gallery, recall_at_k
from .runner import EvalResult, evaluate
from .similarity import feature_similarity, pairwise_distance

__all__ = [
    "MEASUREMENTS",
    "PAPER_KS",
    "EvalResult",
    "choose_gallery",
    "correlate",
    "equal_error_rate",
    "evaluate",
    "feature_similarity",
    "measure",
    "pairwise_distance",
    "recall_at_k",
    "speaker_consistency",
]

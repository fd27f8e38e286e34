"""Craniofacial measurements on decoded faces, correlated between faces from voices and from faces.

The paper (Sec. 5.2) decodes each test clip twice, from the true face embedding (F2F) and from the
voice (S2F), places landmarks on both images, takes a dozen anthropometric measurements, and reports
the Pearson correlation of each over the clips beside a shuffled baseline (S2F against the F2F
measurements of other clips). Here the landmarks are dlib's 68 points, read by
:func:`s2f.eval.face_readers.landmarks_of_faces` (:class:`s2f.vision.landmarks.FaceLandmarker`; the
paper used DEST) in the box dlib's face detector finds; decoded faces are canonical crops, so where it
finds none the landmarks are placed in the canonical face box instead, and such faces are counted and
reported. Nothing here loads a model: the landmarks come in, the measurements go out.

Lengths are divided by the outer inter-ocular distance so that face size does not count; indices are
ratios of two lengths, as in Farkas' anthropometry. dlib 68-point indices: jaw 0-16, nose bridge
27-30, nose base 31-35, eyes 36-47, outer lips 48-59, inner lips 60-67.

Example:
    >>> from s2f.vision.alignment import mean_shape
    >>> values = measure(mean_shape(224))
    >>> sorted(values) == sorted(MEASUREMENTS)
    True
    >>> round(values["nasal_index"], 3) == round(values["nose_width"] / values["nose_height"], 3)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._compat.moved import moved_name

__all__ = ["MEASUREMENTS", "PAPER_CORRELATIONS", "correlate", "measure", "measure_all"]

PAPER_CORRELATIONS = {
    "upper_lip_height": 0.16,
    "lateral_upper_lip_heights": 0.26,
    "jaw_width": 0.11,
    "nose_height": 0.14,
    "nose_width": 0.35,
    "labio_oral_region": 0.17,
    "mandibular_index": 0.20,
    "intercanthal_index": 0.21,
    "nasal_index": 0.38,
    "vermilion_height_index": 0.29,
    "mouth_face_width_index": 0.20,
    "nose_area": 0.28,
}
"""The paper's Pearson r between F2F and S2F measurements (all p < 0.001; shuffled baseline 0.02)."""

MEASUREMENTS = tuple(PAPER_CORRELATIONS)


def _distance(points: np.ndarray, a: int | np.ndarray, b: int | np.ndarray) -> float:
    first = points[a] if isinstance(a, int) else a
    second = points[b] if isinstance(b, int) else b
    return float(np.linalg.norm(first - second))


def _area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def measure(landmarks: np.ndarray) -> dict[str, float]:
    """The paper's twelve measurements of one face from dlib's 68 landmarks [68, 2].

    Lengths are in units of the outer inter-ocular distance (36-45), areas in its square.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"craniofacial measurements need dlib's 68 landmarks, got shape {points.shape}")
    scale = max(_distance(points, 36, 45), 1e-9)
    stomion = (points[62] + points[66]) / 2
    nose_width, nose_height = _distance(points, 31, 35), _distance(points, 27, 33)
    jaw_width = _distance(points, 4, 12)
    return {
        "upper_lip_height": _distance(points, 33, stomion) / scale,
        "lateral_upper_lip_heights": (_distance(points, 31, 50) + _distance(points, 35, 52)) / 2 / scale,
        "jaw_width": jaw_width / scale,
        "nose_height": nose_height / scale,
        "nose_width": nose_width / scale,
        "labio_oral_region": _area(points[48:60]) / scale**2,
        "mandibular_index": _distance(points, stomion, points[8]) / max(jaw_width, 1e-9),
        "intercanthal_index": _distance(points, 39, 42) / scale,
        "nasal_index": nose_width / max(nose_height, 1e-9),
        "vermilion_height_index": _distance(points, 51, stomion) / max(_distance(points, stomion, points[57]), 1e-9),
        "mouth_face_width_index": _distance(points, 48, 54) / max(_distance(points, 1, 15), 1e-9),
        "nose_area": _area(points[[27, 31, 32, 33, 34, 35]]) / scale**2,
    }


def measure_all(landmarks: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`measure` of each face, as one array [N] per measurement."""
    rows = [measure(points) for points in landmarks]
    return {name: np.array([row[name] for row in rows]) for name in MEASUREMENTS}


def correlate(
    from_faces: dict[str, np.ndarray], from_voices: dict[str, np.ndarray], *, shuffles: int = 100, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Pearson r (and its two-sided p) of each measurement between F2F and S2F faces of the same clips.

    The shuffled baseline pairs each S2F face with the F2F face of a random other clip; its r is
    averaged over ``shuffles`` permutations (it should be near 0).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> values = {"nose_width": rng.normal(size=200)}
        >>> same = correlate(values, values)["nose_width"]
        >>> round(same["r"], 6), abs(same["shuffled_r"]) < 0.05
        (1.0, True)
    """
    from scipy.stats import pearsonr

    rng = np.random.default_rng(seed)
    result: dict[str, dict[str, Any]] = {}
    for name, truth in from_faces.items():
        guess = from_voices[name]
        if len(truth) < 3 or np.ptp(truth) == 0 or np.ptp(guess) == 0:
            result[name] = {"r": None, "p": None, "shuffled_r": None, "faces": len(truth)}
            continue
        r, p = pearsonr(truth, guess)
        shuffled = [pearsonr(truth[rng.permutation(len(truth))], guess)[0] for _ in range(shuffles)]
        result[name] = {"r": float(r), "p": float(p), "shuffled_r": float(np.mean(shuffled)), "faces": len(truth)}
    return result


def __getattr__(name: str) -> Any:
    # The face reader that was here reads model files, so it moved to s2f.eval.face_readers.
    return moved_name(__name__, name)

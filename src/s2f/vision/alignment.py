"""Alignment to s2f's canonical face crop, and the mean face shape that defines it.

Coordinates are pixels, x then y, with pixel centers at integers (dlib's and OpenCV's convention).
The canonical crop places :data:`MEAN_SHAPE_68` (the mean dlib shape published with OpenFace,
Apache-2.0) in the middle of a square image with room for hair and chin; :func:`align_face` maps a
photo onto it with a similarity transform fitted to the eyes and nose.

Example:
    >>> import numpy as np
    >>> shape = mean_shape(224)
    >>> shape.shape, bool((shape > 0).all() and (shape < 223).all())
    ((68, 2), True)
    >>> image = np.zeros((300, 400, 3), np.uint8)
    >>> photo_points = shape * 1.5 + np.array([40.0, 10.0])
    >>> aligned = align_face(image, photo_points, size=224)
    >>> aligned.image.shape, bool(np.allclose(aligned.landmarks, shape, atol=1e-3))
    ((224, 224, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .images import load_rgb

__all__ = [
    "ALIGNMENT_POINTS",
    "FACE_CENTER_Y",
    "FACE_FRACTION",
    "MEAN_SHAPE_68",
    "AlignedFace",
    "align_face",
    "mean_shape",
    "similarity_transform",
    "warp_similarity",
]


# The mean of dlib's 68 landmarks as published with OpenFace (align_dlib.py, Apache-2.0), scaled so
# that the points span [0, 1] in x (jaw ends) and y (brow top to chin). Order: jaw 0-16, brows 17-26,
# nose 27-35, eyes 36-47, mouth 48-67.
MEAN_SHAPE_68 = np.array(
    [
        (0.0000, 0.1786), (0.0041, 0.3126), (0.0197, 0.4477), (0.0481, 0.5801),
        (0.1003, 0.7035), (0.1800, 0.8121), (0.2763, 0.9047), (0.3846, 0.9801),
        (0.5074, 1.0000), (0.6301, 0.9761), (0.7387, 0.8992), (0.8355, 0.8051),
        (0.9143, 0.6946), (0.9644, 0.5683), (0.9887, 0.4324), (0.9993, 0.2953),
        (1.0000, 0.1591), (0.0949, 0.0760), (0.1553, 0.0249), (0.2377, 0.0114),
        (0.3231, 0.0242), (0.4037, 0.0578), (0.5686, 0.0521), (0.6513, 0.0154),
        (0.7380, 0.0000), (0.8229, 0.0119), (0.8874, 0.0603), (0.4889, 0.1551),
        (0.4899, 0.2434), (0.4909, 0.3318), (0.4921, 0.4221), (0.3974, 0.4800),
        (0.4443, 0.4991), (0.4950, 0.5144), (0.5456, 0.4968), (0.5918, 0.4772),
        (0.1942, 0.1693), (0.2460, 0.1369), (0.3100, 0.1374), (0.3638, 0.1779),
        (0.3064, 0.1908), (0.2439, 0.1914), (0.6190, 0.1728), (0.6725, 0.1299),
        (0.7363, 0.1279), (0.7889, 0.1582), (0.7412, 0.1816), (0.6791, 0.1837),
        (0.3071, 0.6418), (0.3760, 0.6110), (0.4467, 0.5971), (0.4972, 0.6087),
        (0.5500, 0.5954), (0.6233, 0.6071), (0.6954, 0.6341), (0.6281, 0.7091),
        (0.5574, 0.7434), (0.5002, 0.7506), (0.4453, 0.7458), (0.3751, 0.7145),
        (0.3373, 0.6462), (0.4470, 0.6406), (0.4980, 0.6450), (0.5514, 0.6386),
        (0.6650, 0.6396), (0.5531, 0.6765), (0.4986, 0.6842), (0.4466, 0.6786),
    ],
    dtype=np.float64,
)  # fmt: skip

# Nose bridge, nose and eyes (27-47): they fix position, scale and roll and barely move with
# expression or face width, unlike the jaw, brows and mouth.
ALIGNMENT_POINTS = tuple(range(27, 48))

# Where the canonical crop puts the face: the landmarks' bounding box spans this fraction of the
# side, centered horizontally, its center this far down (leaving room above for forehead and hair).
FACE_FRACTION = 0.6
FACE_CENTER_Y = 0.55


def mean_shape(size: int = 224, *, face_fraction: float = FACE_FRACTION, center_y: float = FACE_CENTER_Y) -> np.ndarray:
    """The canonical 68 landmarks [68, 2] in pixels of a ``size`` x ``size`` crop.

    Args:
        size: Side of the square crop.
        face_fraction: Width (and height) of the landmarks' bounding box, as a fraction of the side.
        center_y: Height of the bounding box's center, as a fraction of the side.
    """
    unit = 0.5 + face_fraction * (MEAN_SHAPE_68 - 0.5)
    unit[:, 1] += center_y - 0.5
    return unit * size - 0.5


@dataclass(frozen=True)
class AlignedFace:
    """A face crop in the canonical frame.

    Attributes:
        image: The crop, RGB uint8 [size, size, 3].
        landmarks: The landmarks moved into the crop [K, 2] (float32, pixels).
        matrix: The 2x3 similarity that maps photo pixels to crop pixels.
    """

    image: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) that best maps ``source`` onto ``target``.

    Least squares over the points (Umeyama, 1991), without reflection.
    """
    # By hand: scikit-image's SimilarityTransform is the same fit (to 1e-12 px on real faces) and
    # 1.5-1.7x slower, and it is not a dependency outside tests (benchmarks/geometry.py).
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    covariance = t.T @ s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float((singular * np.diag(sign)).sum() / s.var(0).sum())
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_t - matrix[:, :2] @ mean_s
    return matrix


def warp_similarity(image: np.ndarray, matrix: np.ndarray, size: int, *, padding: str = "border") -> np.ndarray:
    """Resamples ``image`` (uint8 [H, W, 3]) into a ``size`` x ``size`` crop through the 2x3 ``matrix``.

    Shrinking is antialiased: the photo is first downscaled to about the crop's scale, so fine
    detail (hair, skin texture) averages instead of aliasing.

    Args:
        image: The photo.
        matrix: Photo pixels -> crop pixels, as from :func:`similarity_transform`.
        size: Side of the crop.
        padding: ``grid_sample``'s rule where the crop reaches past the photo (``"border"``, ``"zeros"``,
            ``"reflection"``).
    """
    from kornia.geometry.transform import warp_affine

    pixels = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None]
    pixels, matrix = shrink_before_warp(pixels, np.asarray(matrix, np.float64))
    # align_corners=False keeps pixel centers at integers (kornia >= 0.9 normalises with it; earlier
    # versions mixed the two conventions). Same crops as the hand-written grid it replaced, up to a
    # grey level of rounding, and faster (benchmarks/geometry.py).
    affine = torch.from_numpy(matrix).float()[None]
    crop = warp_affine(pixels, affine, (size, size), mode="bilinear", padding_mode=padding, align_corners=False)
    return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def align_face(
    image: Any,
    landmarks: np.ndarray,
    size: int = 224,
    *,
    points: Sequence[int] = ALIGNMENT_POINTS,
    padding: str = "border",
) -> AlignedFace:
    """Maps a photo onto the canonical crop: the face's eyes and nose onto :func:`mean_shape`'s.

    Args:
        image: The photo (path, PIL image or RGB array).
        landmarks: Its 68 dlib landmarks [68, 2] in pixels.
        size: Side of the square crop (the paper and the shards: 224).
        points: Which landmarks the similarity is fitted to.
        padding: What fills crop pixels beyond the photo (see :func:`warp_similarity`).
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != MEAN_SHAPE_68.shape:
        raise ValueError(f"expected dlib's 68 landmarks [68, 2], got {landmarks.shape}")
    index = list(points)
    matrix = similarity_transform(landmarks[index], mean_shape(size)[index])
    crop = warp_similarity(load_rgb(image), matrix, size, padding=padding)
    moved = landmarks @ matrix[:, :2].T + matrix[:, 2]
    return AlignedFace(image=crop, landmarks=moved.astype(np.float32), matrix=matrix)


def shrink_before_warp(pixels: torch.Tensor, matrix: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Pixels [1, C, H, W] shrunk with an antialiasing filter when ``matrix`` (2 x 3) shrinks them by more
    than 0.8, and the matrix that maps the shrunk image where ``matrix`` mapped the original, so a bilinear
    warp afterwards does not alias."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 0.8:
        return pixels, matrix
    height, width = pixels.shape[-2:]
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    pixels = F.interpolate(pixels, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    # Pixel centers move with the resize: x_small = (x + 0.5) * w_small / w - 0.5.
    sx, sy = new_w / width, new_h / height
    to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    return pixels, (np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(to_small))[:2]

"""Speech to cartoon: a decoded face redrawn as a flat, stylised avatar (an SVG).

Speech2Face (Oh et al., CVPR 2019, section 5) shows the predicted face rendered as a personalised
cartoon. Here the cartoon is drawn from what the decoder produced: the shapes come from the decoded
68 landmarks (dlib's order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67) and every
fill colour is sampled from the decoded face at a place the landmarks name (skin on the cheeks and
forehead, hair above the brows, lips between the outer and inner lip line, the iris at the eye's
centre). A wider decoded jaw gives a wider cartoon face, a darker decoded skin a darker fill.

The output is a pure function of the image and the landmarks: coordinates are rounded to 0.1 px
and colours to whole 8-bit values, so the same face always gives the same bytes.

Example:
    >>> import numpy as np, torch
    >>> from s2f.vision.alignment import mean_shape
    >>> face = np.full((64, 64, 3), 180, dtype=np.uint8)
    >>> svg = cartoon_svg(face, mean_shape(64))
    >>> svg.startswith("<svg") and 'id="skin"' in svg
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["CARTOON_PARTS", "cartoon_svg"]

JAW = list(range(0, 17))
RIGHT_BROW, LEFT_BROW = list(range(17, 22)), list(range(22, 27))
NOSE_BRIDGE, NOSE_BASE = list(range(27, 31)), list(range(31, 36))
RIGHT_EYE, LEFT_EYE = list(range(36, 42)), list(range(42, 48))
OUTER_LIPS, INNER_LIPS = list(range(48, 60)), list(range(60, 68))

CARTOON_PARTS = ("hair", "skin", "right-brow", "left-brow", "right-eye", "left-eye", "nose", "lips")
"""The ``id`` of every shape in the cartoon, back to front."""


def cartoon_svg(image: Any, landmarks: Any, *, size: int = 256) -> str:
    """The face as an SVG avatar.

    Args:
        image: The decoded face: a PIL image, or an array [H, W, 3] (uint8, or float in [0, 1]).
        landmarks: Its 68 landmarks [68, 2] in the image's pixels (a tensor or an array).
        size: Side of the SVG's drawing, in pixels; the face is scaled from the image's side.

    Raises:
        ConfigError: When the landmarks are not dlib's 68 points.
    """
    pixels = _as_uint8(image)
    points = np.asarray(landmarks.detach().cpu() if hasattr(landmarks, "detach") else landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ConfigError(f"a cartoon is drawn from 68 landmarks (dlib's order), got an array shaped {points.shape}")
    colours = _sample_colours(pixels, points)
    scale = size / max(pixels.shape[0], pixels.shape[1])
    p = points * scale
    eye_size = float(np.linalg.norm(p[39] - p[36]))
    shapes = [
        _polygon("hair", _hair_outline(p), colours["hair"]),
        _polygon("skin", np.concatenate([p[JAW], _forehead(p)]), colours["skin"]),
        _polyline("right-brow", p[RIGHT_BROW], colours["brows"], width=eye_size * 0.22),
        _polyline("left-brow", p[LEFT_BROW], colours["brows"], width=eye_size * 0.22),
        _eye("right-eye", p[RIGHT_EYE], colours["right-iris"]),
        _eye("left-eye", p[LEFT_EYE], colours["left-iris"]),
        _nose(p, colours["shade"], width=eye_size * 0.1),
        _lips(p, colours["lips"], colours["shade"]),
    ]
    background = _hex(np.clip(colours["background"], 0, 255))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" height="{size}">'
        f'<rect id="background" width="{size}" height="{size}" fill="{background}"/>' + "".join(shapes) + "</svg>"
    )


def _as_uint8(image: Any) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] < 3:
        raise ConfigError(f"a cartoon needs an RGB face image [H, W, 3], got an array shaped {array.shape}")
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    return array


def _sample_colours(pixels: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """The median colour of a small patch at each place a part's colour is read from."""
    eye_size = float(np.linalg.norm(p[39] - p[36]))
    radius = max(1, round(eye_size * 0.25))
    brow_line = p[17:27, 1].min()
    above_brows = brow_line - (p[30, 1] - brow_line) * 0.6
    centre_x = p[27, 0]
    cheeks = [(p[1] + p[31]) / 2, (p[15] + p[35]) / 2, (p[27] + p[28]) / 2 + [0, -eye_size * 0.9]]
    lips = [(p[outer] + p[inner]) / 2 for outer, inner in ((50, 61), (52, 63), (57, 66), (58, 67), (56, 65))]
    skin = _median([_patch(pixels, point, radius) for point in cheeks])
    return {
        "skin": skin,
        "shade": skin * 0.7,  # a darker tone of the skin for the nose and the mouth's line
        "hair": _median([_patch(pixels, (x, max(above_brows, 1)), radius) for x in (centre_x - eye_size, centre_x)]),
        "brows": _median([_patch(pixels, p[i], max(1, radius // 2)) for i in (19, 24)]),
        "lips": _median([_patch(pixels, point, max(1, radius // 2)) for point in lips]),
        "right-iris": _median([_patch(pixels, p[RIGHT_EYE].mean(0), max(1, radius // 2))]),
        "left-iris": _median([_patch(pixels, p[LEFT_EYE].mean(0), max(1, radius // 2))]),
        "background": _median([_patch(pixels, (2, 2), 2), _patch(pixels, (pixels.shape[1] - 3, 2), 2)]),
    }


def _patch(pixels: np.ndarray, point: Sequence[float] | np.ndarray, radius: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    x = int(np.clip(round(float(point[0])), 0, width - 1))
    y = int(np.clip(round(float(point[1])), 0, height - 1))
    return pixels[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1].reshape(-1, 3)


def _median(patches: list[np.ndarray]) -> np.ndarray:
    return np.median(np.concatenate(patches).astype(np.float64), axis=0)


def _forehead(p: np.ndarray) -> np.ndarray:
    """The top of the face: the brows lifted by half the brow-to-nose-tip height, right to left."""
    lift = (p[30, 1] - p[17:27, 1].mean()) * 0.5
    return np.array([[x, y - lift] for x, y in p[26:16:-1]])


def _hair_outline(p: np.ndarray) -> np.ndarray:
    """A cap of hair: from the temples, over the forehead, a little wider and higher than the face."""
    centre_x = (p[0, 0] + p[16, 0]) / 2
    half_width = (p[16, 0] - p[0, 0]) / 2 * 1.12
    top = p[17:27, 1].min() - (p[30, 1] - p[17:27, 1].mean()) * 1.1
    angles = np.linspace(np.pi, 2 * np.pi, 13)
    crown = np.stack([centre_x + half_width * np.cos(angles), p[0, 1] + (p[0, 1] - top) * np.sin(angles)], 1)
    return np.concatenate([[p[2] + [-half_width * 0.08, 0]], crown, [p[14] + [half_width * 0.08, 0]]])


def _eye(name: str, eye: np.ndarray, iris: np.ndarray) -> str:
    centre = eye.mean(0)
    radius = max(0.5, float(np.linalg.norm(eye[3] - eye[0])) * 0.2)
    return (
        f'<g id="{name}">{_polygon("", eye, np.array([245.0, 245.0, 240.0]))}'
        f'<circle cx="{centre[0]:.1f}" cy="{centre[1]:.1f}" r="{radius:.1f}" fill="{_hex(iris)}"/></g>'
    )


def _nose(p: np.ndarray, colour: np.ndarray, width: float) -> str:
    bridge = _polyline("", p[NOSE_BRIDGE], colour, width=width)
    base = _polyline("", p[NOSE_BASE], colour, width=width)
    return f'<g id="nose">{bridge}{base}</g>'


def _lips(p: np.ndarray, colour: np.ndarray, line: np.ndarray) -> str:
    mouth = _polyline("", p[INNER_LIPS + INNER_LIPS[:1]], line, width=1.0)
    return f'<g id="lips">{_polygon("", p[OUTER_LIPS], colour)}{mouth}</g>'


def _polygon(name: str, points: np.ndarray, colour: np.ndarray) -> str:
    label = f'id="{name}" ' if name else ""
    return f'<polygon {label}points="{_points(points)}" fill="{_hex(colour)}"/>'


def _polyline(name: str, points: np.ndarray, colour: np.ndarray, *, width: float) -> str:
    label = f'id="{name}" ' if name else ""
    return (
        f'<polyline {label}points="{_points(points)}" fill="none" stroke="{_hex(colour)}" '
        f'stroke-width="{max(width, 0.5):.1f}" stroke-linecap="round" stroke-linejoin="round"/>'
    )


def _points(points: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _hex(colour: np.ndarray) -> str:
    r, g, b = (round(float(c)) for c in np.clip(colour, 0, 255))
    return f"#{r:02x}{g:02x}{b:02x}"

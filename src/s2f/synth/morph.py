"""New faces from real ones: convex blends of aligned source photos along piecewise-affine warps.

A morph is drawn as (see ``/work/shared/ASSETS.md`` for the measurements behind these choices):

1. a gender at even odds, then weights ``w ~ Dirichlet(0.3)`` over that gender's sources: most morphs
   lean on two or three parents, and none blends a man with a woman (such a blend reads as neither);
2. a shape: the weighted mean of the sources' landmarks (68 dlib points plus points on the forehead),
   plus PCA modes of the sources' shapes with standard-normal coefficients (the mouth moves rigidly,
   so expressions are not stretched);
3. a texture: the weighted mean of the sources' *shape-normalised* textures (each photo warped onto
   the mean shape first, so eyes land on eyes);
4. hair and background from the source with the largest weight (blending hair leaves ghosts),
   joined to the blended face by a feathered mask;
5. one piecewise-affine warp from the mean shape onto the morph's shape.

Warps are numpy + scipy (Delaunay triangles, barycentric coordinates, bilinear sampling). scikit-image's
``PiecewiseAffineTransform`` + ``warp`` gives the same pixels 10-25x slower (it locates pixels with
``find_simplex``, then scans every triangle); OpenCV's per-triangle ``warpAffine`` is 1.3-1.6x faster
but leaves seams of up to 58 grey levels along triangle edges, and s2f does not depend on OpenCV
(``benchmarks/geometry.py``).

Example:
    >>> import numpy as np
    >>> points = np.array([[0, 0], [63, 0], [0, 63], [63, 63], [30, 30]], float)
    >>> image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    >>> bool((piecewise_affine(image, points, points) == image).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face_sources import SourceBank, canonical_shape

__all__ = ["MorphSpec", "Morpher", "extended_points", "face_properties", "piecewise_affine"]

JAW, BROWS, MOUTH = range(0, 17), range(17, 27), range(48, 68)
PCA_SIGMA = 1.0
DIRICHLET_ALPHA = 0.3
FEATHER = 0.05  # mask blur, as a fraction of the bank's side: wide enough to hide skin-tone seams


def extended_points(landmarks: np.ndarray, size: int) -> np.ndarray:
    """dlib's 68 points, 10 points above the brows, and 16 fixed points on the frame's border [94, 2].

    The forehead points let the warp move the brow line and hairline with the face; the border
    points pin the background, so only the face region moves.
    """
    landmarks = np.asarray(landmarks, np.float64)
    lift = 0.5 * (landmarks[8, 1] - landmarks[27, 1])  # half the nose-bridge-to-chin height
    forehead = landmarks[list(BROWS)] - np.array([0.0, lift])
    edge = np.linspace(0.0, size - 1.0, 5)
    border = np.unique(
        np.concatenate(
            [
                np.stack([edge, np.zeros(5)], 1),
                np.stack([edge, np.full(5, size - 1.0)], 1),
                np.stack([np.zeros(5), edge], 1),
                np.stack([np.full(5, size - 1.0), edge], 1),
            ]
        ),
        axis=0,
    )
    return np.concatenate([landmarks, forehead, border])


def piecewise_affine(image: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """Warps ``image`` so that each ``source_points[k]`` moves to ``target_points[k]``.

    The target points are triangulated (Delaunay); every output pixel inside a triangle reads the
    image at the same barycentric position in the matching source triangle, bilinearly. Pixels
    outside every triangle read the image where they are.
    """
    from scipy.ndimage import map_coordinates
    from scipy.spatial import Delaunay

    height, width = image.shape[:2]
    target = np.asarray(target_points, np.float64)
    source = np.asarray(source_points, np.float64)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    sample_x, sample_y = xs.copy(), ys.copy()
    # Rasterise triangle by triangle over its bounding box: scipy's find_simplex is much slower
    # and its run time varies widely with the point layout.
    for corner in Delaunay(target).simplices:
        tri, src = target[corner], source[corner]
        x0, y0 = np.floor(tri.min(0)).astype(int).clip(0)
        x1, y1 = np.ceil(tri.max(0)).astype(int) + 1
        if x1 <= x0 or y1 <= y0:
            continue
        px, py = xs[y0:y1, x0:x1], ys[y0:y1, x0:x1]
        (ax, ay), (bx, by), (cx, cy) = tri
        det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
        if abs(det) < 1e-12:
            continue
        w0 = ((by - cy) * (px - cx) + (cx - bx) * (py - cy)) / det
        w1 = ((cy - ay) * (px - cx) + (ax - cx) * (py - cy)) / det
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        sample_x[y0:y1, x0:x1][inside] = (w0 * src[0, 0] + w1 * src[1, 0] + w2 * src[2, 0])[inside]
        sample_y[y0:y1, x0:x1][inside] = (w0 * src[0, 1] + w1 * src[1, 1] + w2 * src[2, 1])[inside]
    coords = [sample_y, sample_x]
    channels = [
        map_coordinates(image[..., c].astype(np.float32), coords, order=1, mode="nearest")
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=-1) + 0.5, 0, 255).astype(np.uint8)


def face_properties(landmarks: np.ndarray) -> dict[str, float]:
    """Face measurements from 68 landmarks, in inter-ocular distances (scale-free).

    ``face_height`` (brows to chin), ``face_width`` (jaw ends), ``jaw_width`` (points 4-12, the
    lower jaw), ``nose_width`` (alae, 31-35), ``mouth_width`` (corners, 48-54), ``intercanthal``
    (inner eye corners, 39-42), ``brow_height`` (brow middles 19 and 24 above the eye centers).

    Example:
        >>> props = face_properties(canonical_shape(256))
        >>> round(props["face_height"], 2), round(props["nose_width"], 2)
        (2.32, 0.45)
    """
    points = np.asarray(landmarks, np.float64)
    left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
    unit = float(np.linalg.norm(right_eye - left_eye))

    def span(a: int, b: int) -> float:
        return float(np.linalg.norm(points[a] - points[b])) / unit

    brows = (points[19, 1] + points[24, 1]) / 2.0
    return {
        "face_height": float(points[8, 1] - brows) / unit,
        "face_width": span(0, 16),
        "jaw_width": span(4, 12),
        "nose_width": span(31, 35),
        "mouth_width": span(48, 54),
        "intercanthal": span(39, 42),
        "brow_height": float((left_eye[1] + right_eye[1]) / 2.0 - brows) / unit,
    }


@dataclass(frozen=True)
class MorphSpec:
    """Everything that fixes one morph.

    Attributes:
        weights: Convex weights over the bank's sources [N].
        shape: The morph's 68 landmarks in the bank's frame [68, 2].
    """

    weights: np.ndarray
    shape: np.ndarray

    @property
    def dominant(self) -> int:
        """The source whose hair and background the morph keeps."""
        return int(np.argmax(self.weights))


class Morpher:
    """Draws and renders morphs of one :class:`~s2f.synth.face_sources.SourceBank`.

    Args:
        bank: The aligned source faces.
        alpha: Dirichlet concentration of the blend weights (smaller: fewer parents per morph).
        pca_sigma: Standard deviation of the extra shape modes, in units of each mode's own spread.
    """

    def __init__(self, bank: SourceBank, *, alpha: float = DIRICHLET_ALPHA, pca_sigma: float = PCA_SIGMA) -> None:
        from PIL import Image, ImageDraw, ImageFilter

        self.bank, self.alpha, self.pca_sigma = bank, alpha, pca_sigma
        size = bank.size
        self.mean = canonical_shape(size)
        self.mean_points = extended_points(self.mean, size)
        # Shape-normalised textures: every source warped onto the mean shape, so blends align.
        self.normalised = np.stack(
            [
                piecewise_affine(image, extended_points(marks, size), self.mean_points)
                for image, marks in zip(bank.images, bank.landmarks, strict=True)
            ]
        ).astype(np.float32)
        outline = np.concatenate([self.mean_points[list(JAW)], self.mean_points[68:78][::-1]])
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).polygon([tuple(p) for p in outline], fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(FEATHER * size))
        self.mask = (np.asarray(mask, np.float32) / 255.0)[..., None]
        # Shape modes of the sources (mouth excluded: it moves rigidly with the lower face).
        rest = [i for i in range(68) if i not in MOUTH]
        deviations = (bank.landmarks.astype(np.float64) - bank.landmarks.mean(0))[:, rest].reshape(len(bank), -1)
        _, singular, modes = np.linalg.svd(deviations, full_matrices=False)
        self._rest = rest
        self._modes = modes * (singular / np.sqrt(max(1, len(bank) - 1)))[:, None]

    def draw(self, rng: np.random.Generator) -> MorphSpec:
        """A random morph: blend weights and shape."""
        weights = np.zeros(len(self.bank))
        parents = self._parents(rng)
        weights[parents] = rng.dirichlet(np.full(len(parents), self.alpha))
        shape = np.einsum("n,nkd->kd", weights, self.bank.landmarks.astype(np.float64))
        offsets = (rng.standard_normal(len(self._modes)) * self.pca_sigma) @ self._modes
        offsets = offsets.reshape(-1, 2)
        moved = shape.copy()
        moved[self._rest] += offsets
        # The mouth follows the nose base and chin rigidly.
        anchor = [self._rest.index(33), self._rest.index(8)]
        moved[list(MOUTH)] += offsets[anchor].mean(axis=0)
        return MorphSpec(weights=weights, shape=moved)

    def _parents(self, rng: np.random.Generator) -> np.ndarray:
        """The sources one morph blends: those of one gender, drawn at even odds (sources of unknown
        gender join either). A blend of a man and a woman reads as neither."""
        genders = self.bank.genders
        if not ((genders == 0.0).any() and (genders == 1.0).any()):
            return np.arange(len(self.bank))  # a bank without both genders blends everyone
        side = 1.0 if rng.random() < 0.5 else 0.0
        return np.flatnonzero((genders == side) | (genders == 0.5))

    def render(self, spec: MorphSpec) -> np.ndarray:
        """The morph as uint8 RGB [S, S, 3] in the bank's aligned frame."""
        texture = np.einsum("n,nhwc->hwc", spec.weights, self.normalised)
        composite = self.mask * texture + (1.0 - self.mask) * self.normalised[spec.dominant]
        image = np.clip(composite + 0.5, 0, 255).astype(np.uint8)
        return piecewise_affine(image, self.mean_points, extended_points(spec.shape, self.bank.size))

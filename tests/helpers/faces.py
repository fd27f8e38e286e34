"""Many distinct faces made from the two real portraits that ship in installed packages.

scikit-image's astronaut and matplotlib's Grace Hopper are aligned to the canonical 224 crop with
dlib's 68 landmarks, then :func:`make_faces` morphs them (a random mix of the two shapes and
textures), reshapes the mix along jaw, face-length, eye, nose and mouth modes, and jitters colour
and brightness. The decoder and evaluation tests build their shards from these faces.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
import skimage.data
import torch
from PIL import Image, ImageDraw, ImageFilter

from s2f.decoders.tps import tps_warp
from s2f.vision.alignment import align_face
from s2f.vision.landmarks import FaceLandmarker

__all__ = ["HOPPER", "make_faces", "source_faces"]

HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
# dlib's 68-point groups.
JAW, BROWS, NOSE, EYES, MOUTH = range(0, 17), range(17, 27), range(31, 36), range(36, 48), range(48, 68)


@functools.cache
def source_faces() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The two portraits, aligned: ([3, 224, 224] in [0, 1], landmarks [68, 2]) each; computed once, never modify."""
    landmarker = FaceLandmarker()
    sources = []
    for photo in (skimage.data.astronaut(), HOPPER):
        (face,) = landmarker.detect(photo)
        aligned = align_face(photo, face.landmarks, 224)
        image = torch.from_numpy(aligned.image).permute(2, 0, 1).float() / 255
        sources.append((image, torch.from_numpy(aligned.landmarks).double()))
    return tuple(sources)


def _shape_modes(shape: torch.Tensor) -> torch.Tensor:
    """Five unit deformations [5, 68, 2]: jaw width, face length, eye spacing, nose width, mouth width."""
    centre = shape[27:48].mean(0)
    modes = torch.zeros(5, 68, 2, dtype=shape.dtype)
    jaw, mouth, eyes = list(JAW), list(MOUTH), [*EYES, *BROWS]
    modes[0, jaw, 0] = shape[jaw, 0] - centre[0]
    modes[1, jaw, 1] = (shape[jaw, 1] - centre[1]).clamp_min(0)
    modes[1, mouth, 1] = shape[mouth, 1] - centre[1]
    modes[2, eyes, 0] = torch.sign(shape[eyes, 0] - centre[0])
    modes[3, list(NOSE), 0] = shape[list(NOSE), 0] - shape[list(NOSE), 0].mean()
    modes[4, mouth, 0] = shape[mouth, 0] - shape[mouth, 0].mean()
    return modes / modes.abs().amax(dim=(1, 2), keepdim=True)


def _face_mask(shape: np.ndarray, size: int = 224) -> torch.Tensor:
    """Soft mask of the face (jaw line up to a little above the brows), feathered so blends have no seam."""
    brows = shape[list(BROWS)][::-1] - np.array([0.0, 12.0])
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in np.concatenate([shape[list(JAW)], brows])], fill=255)
    return torch.from_numpy(np.asarray(mask.filter(ImageFilter.GaussianBlur(6)), np.float32) / 255)


def make_faces(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct faces: uint8 crops [N, 224, 224, 3] and their landmarks [N, 68, 2]."""
    generator = torch.Generator().manual_seed(seed)
    (image_a, shape_a), (image_b, shape_b) = source_faces()
    faces, shapes = [], []
    for start in range(0, count, 64):
        n = min(64, count - start)
        weight = torch.rand(n, generator=generator, dtype=torch.float64)
        mixed = (1 - weight.view(n, 1, 1)) * shape_a + weight.view(n, 1, 1) * shape_b
        modes = torch.stack([_shape_modes(s) for s in mixed])
        shape = mixed + 5.0 * torch.einsum("nm,nmkc->nkc", torch.randn(n, 5, generator=generator).double(), modes)
        shape = shape.float()
        # Both sources warped into the new shape; the face blends them, hair and background come from one.
        warped_a = tps_warp(image_a.expand(n, -1, -1, -1), shape_a.float().expand(n, -1, -1), shape, flow_size=28)
        warped_b = tps_warp(image_b.expand(n, -1, -1, -1), shape_b.float().expand(n, -1, -1), shape, flow_size=28)
        mask = torch.stack([_face_mask(s) for s in shape.numpy()])[:, None]
        w = weight.float().view(n, 1, 1, 1)
        face = (1 - w) * warped_a + w * warped_b
        outside = torch.where(w < 0.5, warped_a, warped_b)
        image = mask * face + (1 - mask) * outside
        gain = 1 + 0.06 * torch.randn(n, 3, 1, 1, generator=generator)
        image = (image * gain + 0.04 * torch.randn(n, 1, 1, 1, generator=generator)).clamp(0, 1)
        faces.append((image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        shapes.append(shape.numpy())
    return np.concatenate(faces), np.concatenate(shapes)

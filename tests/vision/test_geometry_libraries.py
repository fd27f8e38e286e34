"""s2f's geometry against the libraries that could replace it (kornia, scikit-image), on real face shapes.

Where a library does the same at least as fast, s2f calls it: ``warp_similarity`` is kornia's
``warp_affine`` now, checked here against crops the hand-written version made. Where s2f keeps its
own code, a test pins the measured reason (the numbers: ``benchmarks/geometry.py``), so a library
release that removes the reason fails here and says what to switch.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import skimage.data
import torch
from skimage.transform import SimilarityTransform

from s2f.decoders.tps import tps_warp
from s2f.synth.face_sources import canonical_shape
from s2f.synth.morph import extended_points, piecewise_affine
from s2f.vision.alignment import ALIGNMENT_POINTS, mean_shape, similarity_transform, warp_similarity

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "geometry"
SIZE, FLOW = 64, 32  # the tiny decoder recipe's image and flow grid


@pytest.fixture(scope="module")
def geometry() -> ModuleType:
    """``benchmarks/geometry.py`` as a module: the library versions of each warp are defined there, once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))  # it imports its table helper from a sibling script
        spec = importlib.util.spec_from_file_location("geometry_benchmark", BENCHMARKS / "geometry.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """dlib's 68 points of 13 real faces, in the synth bank's 256-pixel frame."""
    return np.load(FIXTURES / "face_landmarks.npz")["landmarks"].astype(np.float64)


def test_warp_similarity_reproduces_the_crops_of_the_hand_written_warp() -> None:
    photo, recorded = skimage.data.astronaut(), np.load(FIXTURES / "warp_similarity.npz")
    cases = sorted({name.split("/")[0] for name in recorded.files})
    assert len(cases) == 3
    for case in cases:
        expected = recorded[f"{case}/crop"]
        crop = warp_similarity(
            photo, recorded[f"{case}/matrix"], len(expected), padding=str(recorded[f"{case}/padding"])
        )
        difference = np.abs(crop.astype(int) - expected)
        # Float rounding differs between the two grids, so a value at x.5 may round the other way.
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3, case


def test_similarity_transform_is_scikit_images_fit_on_real_faces(geometry: ModuleType, faces: np.ndarray) -> None:
    # Kept: scikit-image's Umeyama fit gives the same matrix, 1.5x slower in benchmarks/geometry.py.
    rng = np.random.default_rng(0)
    index, crop_points = list(ALIGNMENT_POINTS), mean_shape(224)[list(ALIGNMENT_POINTS)]
    for face in faces:
        angle, scale = np.radians(rng.uniform(-30, 30)), rng.uniform(0.3, 3.0)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        photo_points = face @ rotation.T + rng.uniform(0, 500, 2) + rng.normal(0, 0.5, face.shape)
        ours = similarity_transform(photo_points[index], crop_points)
        theirs = geometry._estimated(SimilarityTransform, photo_points[index], crop_points).params[:2]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


@pytest.mark.slow  # scikit-image's warp, slow by nature
def test_piecewise_affine_is_scikit_images_warp_on_real_faces(geometry: ModuleType, faces: np.ndarray) -> None:
    # Kept: scikit-image gives the same pixels about 10x slower (its point location scans every triangle).
    photo = np.ascontiguousarray(skimage.data.astronaut()[::2, ::2])
    mean_points = extended_points(canonical_shape(256), 256)
    for face in faces[:3]:
        points = extended_points(face, 256)
        for source, target in ((points, mean_points), (mean_points, points)):  # normalise, then render
            ours = piecewise_affine(photo, source, target)
            theirs = geometry.skimage_piecewise_affine(photo, source, target)
            difference = np.abs(ours.astype(int) - theirs)
            assert difference.max() <= 1 and (difference > 0).mean() < 1e-4
            assert np.abs(ours.astype(int) - photo).mean() > 1  # the faces did move


def _warp_both(geometry: ModuleType, fraction: float):
    """Both splines over the way from the mean shape to real faces (``fraction`` of it): images and gradients.

    In float64, so that only the two splines differ, not the precision of kornia's whole-map solve.
    """
    mean, faces = geometry.real_face_targets(SIZE, 13, dtype=torch.float64)
    target = mean + fraction * (faces - mean)
    texture = geometry._texture(SIZE, 13, dtype=torch.float64)
    ours = geometry._warp_and_gradients(lambda *a: tps_warp(*a, flow_size=FLOW), texture, mean, target)
    theirs = geometry._warp_and_gradients(
        lambda *a: geometry.kornia_tps_warp(*a, flow_size=FLOW), texture, mean, target
    )
    return mean, target, ours, theirs


def test_kornias_thin_plate_warp_matches_ours_for_small_moves(geometry: ModuleType) -> None:
    # A fiftieth of the way to real faces (landmarks move at most 0.1 px): the two agree, gradients included.
    mean, target, (image, landmark_grad, texture_grad), (k_image, k_landmark_grad, k_texture_grad) = _warp_both(
        geometry, 0.02
    )
    assert (image - k_image).abs().max() < 2e-3
    assert geometry._relative(k_texture_grad, texture_grad) < 5e-3
    assert geometry._relative(k_landmark_grad, landmark_grad) < 0.1
    # Both hold the image border: the fixed points map onto themselves.
    border = geometry.border_points(4, dtype=torch.float64).expand(13, -1, -1)
    for backward_map in (geometry.tps_map, geometry.kornia_tps_map):
        torch.testing.assert_close(
            backward_map(mean.double(), target.double(), SIZE, border), border, atol=1e-3, rtol=0
        )


def test_kornias_thin_plate_warp_overshoots_on_real_face_shapes_where_ours_does_not(geometry: ModuleType) -> None:
    # Why tps_warp keeps its own spline: kornia's (0.9.2 on, the exact spline) has no smoothing, so where
    # a closed mouth puts two lip points on one spot its system is singular. On real face shapes its
    # field then swings far beyond the landmarks' moves and folds the image over; ours reaches at most a
    # quarter beyond the largest landmark move and never folds.
    mean, target = geometry.real_face_targets(SIZE, 13)
    query = geometry._pixel_centers(FLOW, torch.float64).expand(13, -1, -1)
    moved = (target - mean).double().norm(dim=-1).amax(-1) / (SIZE / 2)

    def overshoot_and_folds(backward_map) -> tuple[float, float]:
        field = backward_map(mean.double(), target.double(), SIZE, query)
        return float(((field - query).norm(dim=-1).amax(-1) / moved).max()), geometry._folded_share(field, FLOW)

    ours, theirs = overshoot_and_folds(geometry.tps_map), overshoot_and_folds(geometry.kornia_tps_map)
    assert ours[0] < 1.5 and ours[1] == 0.0, ours
    assert theirs[0] > 2.0 and theirs[1] > 0.01, (
        f"kornia's thin-plate spline no longer overshoots ({theirs}): compare it again with benchmarks/geometry.py "
        "and switch s2f.decoders.tps to it if it is as exact and fast"
    )

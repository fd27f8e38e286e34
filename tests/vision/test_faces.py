"""dlib landmarks and alignment on real photos that ship in packages (scikit-image, matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage.data
from PIL import Image

from s2f.vision.alignment import ALIGNMENT_POINTS, MEAN_SHAPE_68, align_face, mean_shape, similarity_transform
from s2f.vision.images import load_rgb
from s2f.vision.landmarks import FaceLandmarker

HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
LEFT_EYE, RIGHT_EYE, NOSE_TIP, MOUTH = slice(36, 42), slice(42, 48), 30, slice(48, 68)


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _check_anatomy(points: np.ndarray) -> None:
    left, right = points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)
    assert left[0] < points[NOSE_TIP, 0] < right[0]  # the image's left eye is the person's right
    # Eyes above the nose tip, above the mouth, above the chin.
    assert max(left[1], right[1]) < points[NOSE_TIP, 1] < points[MOUTH, 1].mean() < points[8, 1]


def test_dlib_finds_both_faces_with_68_plausible_landmarks(landmarker: FaceLandmarker) -> None:
    astronaut = landmarker.detect(skimage.data.astronaut())
    hopper = landmarker.detect(HOPPER)
    # One face each; the astronaut photo's weak second detection (her glove, score 0.12) is dropped.
    assert len(astronaut) == 1 and len(hopper) == 1
    for face in (astronaut[0], hopper[0]):
        assert face.score > 0.8 and face.landmarks.shape == (68, 2)
        _check_anatomy(face.landmarks)
        left, top, right, bottom = face.box
        inner = face.landmarks[17:]
        assert (inner[:, 0] > left - 10).all() and (inner[:, 0] < right + 10).all()
        assert (inner[:, 1] > top - 10).all() and (inner[:, 1] < bottom + 10).all()
    # Where the faces are, by eye: the astronaut's between x 170-270, y 75-180; Hopper's x 175-370, y 140-340.
    assert 170 < astronaut[0].landmarks[NOSE_TIP, 0] < 270 and 75 < astronaut[0].landmarks[NOSE_TIP, 1] < 180
    assert 175 < hopper[0].landmarks[NOSE_TIP, 0] < 370 and 140 < hopper[0].landmarks[NOSE_TIP, 1] < 340


def test_no_face_in_a_photo_without_one(landmarker: FaceLandmarker) -> None:
    assert landmarker.detect(skimage.data.coffee()) == []


def test_alignment_lands_real_faces_on_the_mean_shape(landmarker: FaceLandmarker) -> None:
    template = mean_shape(224)
    for photo in (skimage.data.astronaut(), HOPPER):
        (face,) = landmarker.detect(photo)
        aligned = align_face(photo, face.landmarks, 224)
        assert aligned.image.shape == (224, 224, 3) and aligned.image.dtype == np.uint8
        _check_anatomy(aligned.landmarks)
        index = list(ALIGNMENT_POINTS)
        assert np.abs(aligned.landmarks[index] - template[index]).mean() < 3.0  # pixels
        assert np.abs(aligned.landmarks - template).mean() < 6.0
        eyes = aligned.landmarks[RIGHT_EYE].mean(0) - aligned.landmarks[LEFT_EYE].mean(0)
        assert abs(np.degrees(np.arctan2(eyes[1], eyes[0]))) < 2.0  # level eyes


def test_alignment_undoes_a_rotated_and_shrunk_photo(landmarker: FaceLandmarker) -> None:
    photo = skimage.data.astronaut()
    (face,) = landmarker.detect(photo)
    upright = align_face(photo, face.landmarks, 112)
    tilted = np.asarray(Image.fromarray(photo).rotate(12, resample=Image.Resampling.BICUBIC, center=(220, 130)))
    tilted = np.asarray(Image.fromarray(tilted).resize((384, 384), Image.Resampling.LANCZOS))
    (again,) = landmarker.detect(tilted)
    realigned = align_face(tilted, again.landmarks, 112)
    # Same crop of the same face, up to landmark noise and resampling.
    assert np.abs(realigned.landmarks - upright.landmarks)[list(ALIGNMENT_POINTS)].mean() < 1.5
    difference = np.abs(realigned.image.astype(float) - upright.image.astype(float))[20:100, 20:100].mean()
    assert difference < 8.0, difference
    assert np.abs(np.roll(upright.image, 10, axis=1).astype(float) - upright.image)[20:100, 20:100].mean() > difference


def test_similarity_transform_recovers_a_known_one() -> None:
    angle, scale, shift = np.radians(20), 1.7, np.array([30.0, -12.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = MEAN_SHAPE_68 * 100
    matrix = similarity_transform(source, source @ rotation.T + shift)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-7)


def test_mean_shape_is_a_centred_face_in_the_crop() -> None:
    shape = mean_shape(224)
    assert shape.shape == (68, 2)
    width, height = np.ptp(shape, axis=0)
    assert width == pytest.approx(0.6 * 224) and height == pytest.approx(0.6 * 224)
    assert shape[:, 0].mean() == pytest.approx(111.5, abs=3)
    assert shape[17:27, 1].min() > 50 and shape[8, 1] < 200  # forehead room above the brows, chin inside
    np.testing.assert_allclose(mean_shape(64), (shape + 0.5) * 64 / 224 - 0.5)


def test_load_rgb_reads_paths_pil_images_and_grey_arrays() -> None:
    from_path = load_rgb(HOPPER)
    assert from_path.shape == (600, 512, 3) and from_path.dtype == np.uint8
    assert np.array_equal(load_rgb(Image.open(HOPPER)), from_path)
    assert load_rgb(skimage.data.camera()).shape == (512, 512, 3)
    with pytest.raises(ValueError, match="uint8"):
        load_rgb(np.zeros((4, 4, 3), np.float32))

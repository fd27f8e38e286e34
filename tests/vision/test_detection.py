"""Face detection, choice of the speaker and alignment on real photos placed at known positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from s2f.synth.sample_videos import compose_frame, photo
from s2f.vision.alignment import mean_shape
from s2f.vision.detection import (
    LANDMARKS_5,
    Face,
    FaceAligner,
    FaceDetector,
    align_face,
    choose_face,
    detection_view,
    face_template,
)

# Where the faces are in the photos, by an independent detector (dlib's HOG, upsampled once),
# as (left, top, right, bottom) pixels of the photo.
REFERENCE = {"astronaut": (175, 76, 265, 166), "grace_hopper": (180, 139, 366, 325)}


def placed(name: str, left: int, top: int, height: int) -> tuple[float, float, float, float]:
    """The reference face box of ``name`` pasted at (left, top), scaled to ``height`` rows."""
    scale = height / photo(name).shape[0]
    x0, y0, x1, y1 = REFERENCE[name]
    return left + x0 * scale, top + y0 * scale, left + x1 * scale, top + y1 * scale


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def two_faces() -> tuple[np.ndarray, dict[str, tuple[float, ...]]]:
    frame, _ = compose_frame([("astronaut", (10, 60), 400), ("grace_hopper", (330, 30), 420)], size=(704, 480))
    return frame, {"astronaut": placed("astronaut", 10, 60, 400), "grace_hopper": placed("grace_hopper", 330, 30, 420)}


def test_detector_finds_both_faces_where_they_are(detector: FaceDetector, two_faces) -> None:
    frame, known = two_faces
    (faces,) = detector.detect([frame], min_face_size=40)  # faces of 50-100 px; a finer search only costs time
    assert len(faces) == 2 and all(face.score > 0.99 for face in faces)
    for name, box in known.items():
        best = max(faces, key=lambda face: iou(face.box, box))
        # MTCNN's box reaches higher up the forehead than HOG's, so the overlap is partial but clear.
        assert iou(best.box, box) > 0.55, (name, best.box, box)
        cx, cy = best.center
        assert box[0] < cx < box[2] and box[1] < cy < box[3]
        left_eye, right_eye, nose = best.points[0], best.points[1], best.points[2]
        assert left_eye[0] < nose[0] < right_eye[0] and left_eye[1] < nose[1]  # an upright face, not mirrored


def test_detection_on_a_shrunk_view_maps_back(detector: FaceDetector, two_faces) -> None:
    frame, _ = two_faces
    big = np.asarray(Image.fromarray(frame).resize((1408, 960)))
    view, scale = detection_view(big, 704)
    assert view.shape == (480, 704, 3) and scale == pytest.approx(2.0)
    (small,) = detector.detect([view], min_face_size=40)
    (full,) = detector.detect([frame], min_face_size=40)
    for face in small:
        back = face.scaled(scale / 2)  # in the original frame's pixels
        match = max(full, key=lambda other: iou(other.box, back.box))
        # The same face: boxes jitter with the pyramid scales MTCNN happens to use, landmarks less.
        assert iou(match.box, back.box) > 0.75
        assert np.abs(back.points - match.points).max() < 0.06 * match.width


def test_choose_face_rules() -> None:
    def face(x0: float, y0: float, x1: float, y1: float) -> Face:
        return Face((x0, y0, x1, y1), 0.99, np.zeros((5, 2)))

    big, small, far = face(10, 10, 210, 250), face(400, 40, 480, 140), face(500, 300, 620, 440)
    frame = (640, 480)
    assert choose_face([], frame).reason == "no_face"
    assert choose_face([small, big], frame).face is big  # no centre: the largest
    near_small = ((440 + 5) / 640, 90 / 480)
    assert choose_face([big, small, far], frame, center=near_small).face is small
    choice = choose_face([big, small], frame, center=(0.5, 0.9))
    assert choice.face is None and choice.reason == "face_not_at_center" and choice.num_faces == 2
    assert "2 faces" in choice.detail
    tiny = face(100, 100, 140, 150)
    assert choose_face([tiny], frame).reason == "face_too_small"
    assert choose_face([tiny], frame, min_face_size=32).face is tiny
    # The margin: a centre just outside the box still selects it, one far outside does not.
    assert choose_face([small], frame, center=(485 / 640, 90 / 480)).face is small
    assert choose_face([small], frame, center=(560 / 640, 90 / 480), center_margin=0.5).face is None


@pytest.mark.parametrize("scheme", ["dlib68", "mtcnn5"])
def test_crop_holds_the_face_in_the_canonical_frame(detector: FaceDetector, two_faces, scheme: str) -> None:
    frame, _ = two_faces
    aligner = FaceAligner(scheme)
    for face in detector.detect([frame], min_face_size=40)[0]:
        crop = aligner.align(frame, face)
        assert crop.image.shape == (224, 224, 3) and crop.image.dtype == np.uint8
        (found,) = detector.detect([crop.image], min_face_size=60)
        # The face fills the middle of the crop: MTCNN finds it again around the canonical box.
        assert iou(found[0].box, (43, 20, 172, 185)) > 0.7, found[0].box
        if scheme == "mtcnn5":
            assert crop.landmarks.shape == (len(LANDMARKS_5), 2)
            # A least-squares similarity: the five points land near, not exactly on, the template.
            error = np.linalg.norm(crop.landmarks - face_template(224), axis=1)
            assert error.mean() < 8.0, error  # faces differ from the mean face by a few pixels
        else:
            assert crop.landmarks.shape == (68, 2)
            # Eyes and nose are what the alignment fits; they land within a few pixels of the mean face.
            error = np.linalg.norm(crop.landmarks[27:48] - mean_shape(224)[27:48], axis=1)
            assert error.mean() < 4.0, error.mean()


def test_align_face_outside_the_frame_is_black_not_an_error() -> None:
    corner = face_template(224) * 0.5 - 40  # a face half off the top-left corner
    crop = align_face(np.full((100, 100, 3), 200, np.uint8), corner)
    assert crop.image.shape == (224, 224, 3)


@pytest.mark.slow
def test_embeddings_agree_for_one_face_and_differ_between_faces(detector: FaceDetector) -> None:
    from s2f import TEACHERS

    teacher = TEACHERS.create("dlib_resnet")
    aligner = FaceAligner()
    frames = [
        compose_frame([("astronaut", (100, 0), 480)], size=(640, 480))[0],
        # The same photo smaller, elsewhere, and turned by 8 degrees.
        np.asarray(Image.fromarray(compose_frame([("astronaut", (250, 40), 420)], size=(704, 480))[0]).rotate(8)),
        compose_frame([("grace_hopper", (150, 20), 440)], size=(640, 480))[0],
    ]
    crops = []
    for frame in frames:
        (faces,) = detector.detect([frame], min_face_size=40)
        crops.append(aligner.align(frame, choose_face(faces, frame.shape[1::-1]).face).image)
    embeddings = teacher.embed_images(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2))
    distance = torch.cdist(embeddings, embeddings)
    # dlib's verification threshold is 0.6: well below for one person, above for two.
    assert distance[0, 1] < 0.35, distance
    assert distance[0, 2] > 0.6 and distance[1, 2] > 0.6, distance

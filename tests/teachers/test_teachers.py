"""VGG-Face from weights files: safe formats, the public conversion's key names, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from s2f import TEACHERS
from s2f.errors import WeightsError
from s2f.teachers import VGGFace

TINY = {"channels": (4, 8, 8, 16, 16), "convs_per_stage": (1, 1, 1, 1, 1), "fc_dim": 64, "num_classes": 32}


def _faces() -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_seeded_random_teacher_is_reproducible() -> None:
    first, second = TEACHERS.create("vggface_tiny"), TEACHERS.create("vggface_tiny")
    torch.testing.assert_close(first.embed_images(_faces()), second.embed_images(_faces()))
    other = TEACHERS.create("vggface_tiny", random_init_seed=1)
    assert not torch.allclose(first.embed_images(_faces()), other.embed_images(_faces()))


def test_loads_safetensors_and_vgg_face_dag_style_state_dicts(tmp_path: Path) -> None:
    source = VGGFace(random_init_seed=3, **TINY)
    expected = source.embed_images(_faces())
    # The public PyTorch conversion (vgg_face_dag.pth) names convolutions at the top level.
    dag_state = {k.removeprefix("features."): v.clone() for k, v in source.state_dict().items()}
    torch.save(dag_state, tmp_path / "vgg_face_dag.pth")
    save_file(source.state_dict(), str(tmp_path / "vgg_face.safetensors"))
    for name in ("vgg_face_dag.pth", "vgg_face.safetensors"):
        loaded = VGGFace(str(tmp_path / name), **TINY)
        torch.testing.assert_close(loaded.embed_images(_faces()), expected)
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_missing_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="needs its weights file"):
        TEACHERS.create("vggface")
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match=f"{missing}: no such file"):
        TEACHERS.create("vggface", weights=str(missing))


def test_mismatched_weights_name_the_file_and_the_keys(tmp_path: Path) -> None:
    wrong = VGGFace(random_init_seed=0, **{**TINY, "num_classes": 10})
    path = tmp_path / "other.safetensors"
    save_file(wrong.state_dict(), str(path))
    with pytest.raises(WeightsError) as caught:
        VGGFace(str(path), **TINY)
    message = str(caught.value)
    assert str(path) in message and "fc8.weight is [10, 64], expected [32, 64]" in message and "\n" not in message


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"fc8.weight": torch.zeros(1), "payload": Path("x")}, path)
    with pytest.raises(WeightsError, match="not a plain PyTorch state dict"):
        VGGFace(str(path), **TINY)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        VGGFace(str(junk), **TINY)

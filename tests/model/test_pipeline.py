"""Speech2Face: save, reload, predict from real files; what a saved folder holds; bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from media import tone, write_wav
from s2f import ENCODERS, Speech2Face
from s2f.errors import ConfigError, WeightsError


@pytest.fixture
def model() -> Speech2Face:
    torch.manual_seed(0)
    return Speech2Face(
        ENCODERS.create("s2f_cnn_tiny"), clip_seconds=3.0, teacher={"name": "vggface_tiny", "embed_dim": 64}
    )


def test_saved_model_describes_itself_and_reloads_identically(tmp_path: Path, model: Speech2Face) -> None:
    voice = write_wav(tmp_path / "voice.wav", tone(4.0, 180.0))
    before = model.predict(voice)
    folder = model.save_pretrained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "s2f-model" and config["version"] == 1
    assert config["encoder"]["class_path"] == "s2f.encoders.cnn.PaperCNNEncoder"
    assert config["encoder"]["init_args"]["embed_dim"] == 64
    assert config["preprocessing"] == {
        "clip_seconds": 3.0,
        "sample_rate": 16000,
        "n_fft": 512,
        "win_length": 400,
        "hop_length": 160,
        "power": 0.3,
    }
    assert config["teacher"]["name"] == "vggface_tiny"
    again = Speech2Face.from_pretrained(folder)
    after = again.predict(voice)
    assert torch.equal(before.embedding, after.embedding)
    assert before.embedding.shape == (64,) and before.image is None


@pytest.mark.host_sensitive
def test_predict_takes_lists_and_other_lengths(tmp_path: Path, model: Speech2Face) -> None:
    voices = [write_wav(tmp_path / f"{i}.wav", tone(1.0 + i, 120.0 + 40 * i)) for i in range(3)]
    batch = model.predict(voices)
    assert [p.embedding.shape for p in batch] == [(64,)] * 3
    torch.testing.assert_close(batch[1].embedding, model.predict(voices[1]).embedding, atol=1e-5, rtol=1e-5)
    assert model.predict(voices[0], seconds=6.0).embedding.shape == (64,)


def test_bad_model_folders_are_clear_errors(tmp_path: Path, model: Speech2Face) -> None:
    with pytest.raises(ConfigError, match="no such model folder"):
        Speech2Face.from_pretrained(tmp_path / "nothing")
    folder = model.save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"missing model\.safetensors"):
        Speech2Face.from_pretrained(folder)
    other = Speech2Face(ENCODERS.create("s2f_cnn_tiny", hidden_dim=32))
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "m" / "config.json").read_text())
    with pytest.raises(WeightsError, match="does not match"):
        Speech2Face.from_pretrained(tmp_path / "other")
    config = json.loads((folder / "config.json").read_text())
    config["version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    model.save_pretrained(tmp_path / "future")
    (tmp_path / "future" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"v99.*upgrade s2f"):
        Speech2Face.from_pretrained(tmp_path / "future")

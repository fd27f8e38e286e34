"""The calibration: fitted in closed form, applied to embeddings and to drawing, saved with the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.shards import ShardFactory
from s2f import DECODERS, ENCODERS, Speech2Face
from s2f.errors import ConfigError
from s2f.eval.calibrate import calibrate_on_shards
from s2f.model.calibration import EmbeddingCalibration, fit_calibration
from s2f.model.inference import InferenceSettings

FP32 = InferenceSettings(inference_precision="fp32")


def _shrunk_predictions(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True embeddings, and predictions that regress a third of the way to the mean, off by an offset."""
    generator = torch.Generator().manual_seed(seed)
    true = torch.randn(400, 16, generator=generator) + 5.0
    offset = torch.randn(16, generator=generator)
    predicted = true.mean(0) + (true - true.mean(0)) / 3.0 + offset
    return true, predicted, offset


def test_the_fit_recovers_a_known_offset_and_shrinkage() -> None:
    true, predicted, _ = _shrunk_predictions()
    calibration = fit_calibration(predicted, true, {"split": "train"})
    assert calibration.spread == pytest.approx(3.0, rel=1e-5)
    assert calibration.fitted_on == {"clips": 400, "split": "train"}
    moved = calibration(predicted)
    assert torch.allclose(moved.mean(0), true.mean(0), atol=1e-4)
    # Moving does not scale: retrieval and the feature distances see the encoder's own spread.
    assert torch.allclose(moved - moved.mean(0), predicted - predicted.mean(0), atol=1e-4)
    # Drawing scales back to the true faces' spread, which here gives the true faces themselves.
    assert torch.allclose(calibration.for_drawing(moved), true, atol=1e-4)


def test_drawing_never_reaches_further_from_the_mean_than_the_farthest_training_face() -> None:
    true, predicted, _ = _shrunk_predictions()
    calibration = fit_calibration(predicted, true)
    farthest = (true - true.mean(0)).norm(dim=1).max().item()
    assert calibration.radius == pytest.approx(farthest, rel=1e-5)
    # The training voices themselves are drawn as fitted: none lies beyond the radius.
    assert torch.allclose(calibration.for_drawing(calibration(predicted)), true, atol=1e-4)
    # A voice unlike any heard, ten times further out than the training predictions: kept on its
    # direction, pulled in to the radius.
    mean = calibration.target_mean
    outlier = mean + 10.0 * (calibration(predicted[:3]) - mean)
    drawn = calibration.for_drawing(outlier)
    assert torch.allclose((drawn - mean).norm(dim=1), torch.full((3,), farthest), rtol=1e-4)
    cosine = torch.nn.functional.cosine_similarity(drawn - mean, outlier - mean, dim=1)
    assert torch.allclose(cosine, torch.ones(3), atol=1e-5)
    # A calibration saved before the radius existed draws at any distance.
    unbounded = EmbeddingCalibration(16, spread=calibration.spread)
    unbounded.load_state_dict(calibration.state_dict())
    assert unbounded.radius is None and (unbounded.for_drawing(outlier) - mean).norm(dim=1).min() > 5 * farthest
    with pytest.raises(ConfigError, match="radius must be positive"):
        EmbeddingCalibration(4, radius=0.0)


def test_degenerate_inputs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="same embedding"):
        fit_calibration(torch.ones(5, 4), torch.randn(5, 4))
    with pytest.raises(ConfigError, match=r"\[N, D\]"):
        fit_calibration(torch.randn(5, 4), torch.randn(5, 3))
    with pytest.raises(ConfigError, match="positive"):
        EmbeddingCalibration(4, spread=0.0)


def _model() -> Speech2Face:
    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_cnn_tiny", embed_dim=16)
    decoder = DECODERS.create("linear_face_decoder_tiny", embed_dim=16)
    return Speech2Face(encoder, decoder, clip_seconds=1.0).eval()


@pytest.mark.host_sensitive
def test_a_calibrated_model_saves_loads_and_draws_at_the_fitted_spread(tmp_path: Path) -> None:
    model = _model()
    true, predicted, _ = _shrunk_predictions()
    model.calibration = fit_calibration(predicted, true)
    wave = (torch.sin(torch.arange(16_000) / 7.0), 16_000)

    again = Speech2Face.from_pretrained(model.save_pretrained(tmp_path / "model"))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["version"] == 2 and config["calibration"]["spread"] == pytest.approx(3.0, rel=1e-5)
    assert again.calibration is not None and torch.equal(again.calibration.target_mean, model.calibration.target_mean)
    assert again.calibration.radius == pytest.approx(model.calibration.radius)
    # fp32: compared below with the fp32 forward pass (bf16 predictions agree to cosine 0.999: model/test_inference.py)
    first, second = model.predict(wave, settings=FP32), again.predict(wave, settings=FP32)
    assert torch.equal(first.embedding, second.embedding)

    raw = model.encoder(model.frontend(torch.as_tensor(wave[0])[None]))
    assert torch.allclose(first.embedding, model.calibration(raw)[0], atol=1e-5)
    drawn = model.decoder(model.calibration.for_drawing(first.embedding[None]))
    assert torch.allclose(second.landmarks, drawn.landmarks[0], atol=1e-4)
    assert again.with_decoder(again.decoder).calibration is again.calibration


def test_a_model_without_calibration_is_still_written_as_version_1(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "plain")
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert config["version"] == 1 and config["calibration"] is None
    assert Speech2Face.from_pretrained(tmp_path / "plain").calibration is None


def test_calibrating_on_shards_moves_the_training_predictions_onto_the_teacher_mean(
    shard_factory: ShardFactory,
) -> None:
    from s2f.eval.data import load_held_out, predict_embeddings

    shards = shard_factory.toy(speakers=10, clips_per_speaker=4, held_out=1)
    clips = load_held_out(shards, "train")
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny", embed_dim=clips.embeddings.shape[1]), clip_seconds=1.0)
    before = predict_embeddings(model, clips.audio, 1.0)

    calibration = calibrate_on_shards(model, shards, "train")
    after = predict_embeddings(model, clips.audio, 1.0)
    assert calibration.fitted_on == {"clips": len(clips), "split": "train", "seconds": 1.0}
    assert not torch.allclose(before.mean(0), clips.embeddings.mean(0), atol=1e-2)
    assert torch.allclose(after.mean(0), clips.embeddings.mean(0), atol=1e-4)
    # A second calibration measures the encoder, not the first calibration on top of it.
    assert calibrate_on_shards(model, shards, "train").spread == pytest.approx(calibration.spread, rel=1e-5)


def test_the_reported_split_is_never_calibrated_on(
    shard_factory: ShardFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from s2f.cli import main
    from s2f.eval import evaluate

    shards = shard_factory.toy(speakers=10, clips_per_speaker=4, held_out=1)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny", embed_dim=64), clip_seconds=1.0)
    with pytest.raises(ConfigError, match=r"cannot calibrate on split 'test': it is the split being reported"):
        calibrate_on_shards(model, shards, "test")
    assert model.calibration is None
    plain = model.save_pretrained(tmp_path / "plain")

    # s2f export: test by default, and the split of the evaluation it is given, are refused in one line.
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"headline": {}, "data": {"split": "train"}}))
    for extra in (["--calibration-split", "test"], ["--calibration-split", "train", "--eval", str(metrics)]):
        args = ["export", str(plain), str(tmp_path / "out"), "--calibrate-on", str(shards), *extra]
        assert main(args) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("s2f: error: cannot calibrate on split") and "\n" not in error, error
        assert not (tmp_path / "out").exists()

    # A model calibrated on a split cannot report it.
    calibrate_on_shards(model, shards, "train")
    with pytest.raises(ConfigError, match=r"calibrated on split 'train', so its figures there are not held out"):
        evaluate(model, shards, split="train", seconds=(1.0,), progress=False)

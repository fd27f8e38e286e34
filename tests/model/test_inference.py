"""The fast inference path (s2f.model.inference) and the ONNX export (s2f.model.onnx): what runs, and that it agrees."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from s2f import ENCODERS, Speech2Face
from s2f.cli import main
from s2f.errors import ConfigError
from s2f.model.inference import FastEncoder, InferenceSettings, MaxOverFramePairs, choose_precision
from s2f.synth.sample_videos import speech

# bf16 against fp32, fast copies against the model, ONNX against PyTorch: every figure here rides on the
# CPU's kernels, so `nox -s hosts` runs this file again under other instruction sets.
pytestmark = pytest.mark.host_sensitive

SECONDS = 2.0
FP32, BF16 = InferenceSettings(inference_precision="fp32"), InferenceSettings(inference_precision="bf16")
# The stated tolerance of bf16 embeddings against fp32 ones, per clip of speech, for the paper's CNN. Its tiny
# variant (8-32 channels: less averaging of rounding errors) meets it on average; its worst of 40 clips is 0.9987.
BF16_COSINE = 0.999
TINY_WORST_COSINE = 0.998


def _voices(count: int, seconds: float = SECONDS) -> torch.Tensor:
    """Speech-like clips (a source-filter voice with syllables), one speaker each."""
    return torch.stack([torch.from_numpy(speech(seconds, seed=seed)) for seed in range(count)])


def _speech_model(name: str) -> Speech2Face:
    """The CNN with its batch norms set to the statistics of speech, as training leaves them (fresh ones pass
    activations through unnormalised, which hides what bf16 rounding does)."""
    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create(name), clip_seconds=SECONDS)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the calibration batch
    model.train()
    with torch.no_grad():
        model(_voices(8))
    return model.eval()


@pytest.fixture(scope="module")
def model() -> Speech2Face:
    return _speech_model("s2f_cnn_tiny")


def test_auto_precision_follows_the_device_and_an_argument_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S2F_PRECISION", raising=False)
    monkeypatch.setattr("s2f.model.inference.bf16_supported", lambda device: True)
    assert choose_precision("auto", "cpu")[0] == "bf16"
    assert choose_precision("fp32", "cpu") == ("fp32", "asked for")
    monkeypatch.setattr("s2f.model.inference.bf16_supported", lambda device: False)
    assert choose_precision(None, "cpu")[0] == "fp32"
    assert choose_precision("bf16", "cpu") == ("bf16", "asked for")
    monkeypatch.setenv("S2F_PRECISION", "bf16")
    assert choose_precision("auto", "cpu") == ("bf16", "S2F_PRECISION")
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        choose_precision("fp16", "cpu")


def test_bf16_embeddings_of_speech_stay_within_the_stated_cosine_of_fp32(model: Speech2Face) -> None:
    waves = _voices(6)
    fp32 = model.embed(waves, settings=FP32)
    bf16 = model.embed(waves, settings=BF16)
    assert model.last_inference.precision == "bf16"
    with torch.inference_mode():
        eager = model(waves)
    torch.testing.assert_close(fp32, eager, rtol=1e-4, atol=1e-5)  # fp32 channels-last is the model itself
    assert not torch.allclose(bf16, fp32, rtol=1e-4, atol=1e-5)  # bf16 did run
    agreement = torch.cosine_similarity(bf16, fp32)
    assert agreement.mean() >= BF16_COSINE and agreement.min() >= TINY_WORST_COSINE, agreement
    # The tolerance tells voices apart: different speakers' embeddings are far less alike than that.
    unit = torch.nn.functional.normalize(fp32, dim=1)
    between = (unit @ unit.T)[~torch.eye(len(waves), dtype=torch.bool)]
    assert between.max() < 0.9


@pytest.mark.slow
def test_bf16_embeddings_of_the_paper_cnn_stay_within_the_stated_cosine_of_fp32() -> None:
    model = _speech_model("s2f_cnn")
    waves = _voices(6)
    agreement = torch.cosine_similarity(model.embed(waves, settings=BF16), model.embed(waves, settings=FP32))
    assert model.last_inference.precision == "fp32"
    assert agreement.min() >= BF16_COSINE, agreement
    assert agreement.max() < 1 - 1e-6  # bf16 did run: its rounding shows


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("frames", [9, 10])
def test_max_over_frame_pairs_is_the_cnns_time_pool(dtype: torch.dtype, frames: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, frames, 7).to(dtype).contiguous(memory_format=torch.channels_last)
    x[0, 0, 2:4] = 0.5  # ties, as ReLU then BatchNorm leave them
    pooled = MaxOverFramePairs()(x)
    assert torch.equal(pooled, torch.nn.MaxPool2d((2, 1))(x))
    assert pooled.is_contiguous(memory_format=torch.channels_last)


def test_the_cnns_fast_copy_pools_by_frame_pairs_and_agrees_with_the_model(model: Speech2Face) -> None:
    waves = _voices(3)
    fast = model.embed(waves, settings=FP32)
    copy = model.last_inference.prepare(model)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in copy.modules())
    assert sum(isinstance(m, MaxOverFramePairs) for m in copy.modules()) == 4
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in model.encoder.modules())  # the model keeps its own
    with torch.inference_mode():
        torch.testing.assert_close(fast, model(waves), rtol=1e-4, atol=1e-5)


def test_predict_batches_a_list_and_says_which_precision_ran(
    model: Speech2Face, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S2F_PRECISION", raising=False)
    clips = [(wave, 16_000) for wave in _voices(5)]
    calls = []
    encoder_forward = type(model.encoder).forward
    monkeypatch.setattr(
        type(model.encoder), "forward", lambda self, spec: calls.append(len(spec)) or encoder_forward(self, spec)
    )
    together = model.predict(clips, settings=FP32.replace(batch_size=2))
    assert calls == [2, 2, 1]
    alone = [model.predict(clip, settings=FP32) for clip in clips]
    for batched, single in zip(together, alone, strict=True):
        assert batched.inference_precision == single.inference_precision == "fp32"
        torch.testing.assert_close(batched.embedding, single.embedding, rtol=1e-4, atol=1e-5)

    monkeypatch.setattr("s2f.model.inference.bf16_supported", lambda device: True)
    assert model.predict(clips[0], settings=InferenceSettings()).inference_precision == "bf16"
    monkeypatch.setattr("s2f.model.inference.bf16_supported", lambda device: False)
    fresh = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=SECONDS)
    assert fresh.predict(clips[0]).inference_precision == "fp32"
    assert fresh.last_inference.describe().startswith("fp32 (auto: the CPU has no native bf16)")


def test_the_fast_copy_follows_changed_weights_and_leaves_the_model_alone(model: Speech2Face) -> None:
    waves = _voices(2)
    keys = set(model.state_dict())
    before = model.embed(waves, settings=BF16)
    assert set(model.state_dict()) == keys  # the bf16 copy is no part of the model
    assert all(p.dtype == torch.float32 for p in model.parameters())
    layer = model.encoder.output_layer()
    with torch.no_grad():
        layer.bias.add_(1.0)  # as an optimizer step does: in place
    try:
        after = model.embed(waves, settings=BF16)
        torch.testing.assert_close(after - before, torch.ones_like(before), rtol=0, atol=0.02)
    finally:
        with torch.no_grad():
            layer.bias.sub_(1.0)


def test_settings_are_checked(model: Speech2Face) -> None:
    with pytest.raises(ConfigError, match="unknown inference precision 'fp16'"):
        InferenceSettings(inference_precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size must be a whole number of at least 1"):
        InferenceSettings(batch_size=0)
    with pytest.raises(ConfigError, match="unknown inference settings"):
        model.compile(fullgraph=True)
    with pytest.raises(ConfigError, match="keywords only"):
        model.compile("max-autotune")
    assert model.inference.compile is False


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("ATEN_CPU_CAPABILITY") == "default",
    reason="torch 2.14's inductor writes vector code that does not compile with ATEN's kernels held to the generic "
    "path (`expected primary-expression before 'float'`); it runs under every real host's kernels",
)
def test_compiled_encoder_agrees_with_eager_on_a_padded_batch(model: Speech2Face) -> None:
    waves = _voices(3)
    fast = FastEncoder(FP32.replace(compile=True))  # one compilation: most of a minute on 2 cores
    eager = FastEncoder(FP32)
    torch.testing.assert_close(fast(model, waves), eager(model, waves), rtol=1e-3, atol=1e-4)
    frames = model.frontend.num_frames(waves.shape[1])
    assert fast.compiled_shapes == {(4, frames)}  # 3 clips ran as a batch of 4, the padding dropped
    assert fast.describe().endswith("compiled")


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_like_pytorch_at_any_batch_and_length(
    model: Speech2Face, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from s2f.model.calibration import EmbeddingCalibration
    from s2f.model.onnx import OnnxSpeech2Face

    # The fixture's encoder with a calibration: the graph holds it too.
    calibrated = Speech2Face(model.encoder, clip_seconds=SECONDS, calibration=EmbeddingCalibration(64))
    calibrated.calibration.target_mean.fill_(0.5)
    folder = calibrated.save_pretrained(tmp_path / "model")
    assert main(["export", str(folder), str(tmp_path / "out"), "--onnx"]) == 0
    onnx_path = tmp_path / "out" / "model.onnx"
    assert "model.onnx" in capsys.readouterr().out

    runner = OnnxSpeech2Face(onnx_path, threads=2)
    assert (runner.sample_rate, runner.clip_seconds) == (16_000, SECONDS)
    for count, seconds in ((1, SECONDS), (3, 1.5), (2, 3.0)):
        waves = _voices(count, seconds)
        with torch.inference_mode():
            expected = calibrated(waves)
        _assert_same_embeddings(runner.embed(waves), expected)

    wav = tmp_path / "voice.wav"
    import soundfile

    soundfile.write(wav, speech(SECONDS, seed=3), 16_000)
    out = tmp_path / "e.npy"
    assert main(["predict", "--model", str(onnx_path), str(wav), "-o", str(out)]) == 0
    assert "inference: fp32 (onnxruntime" in capsys.readouterr().err
    reference = calibrated.predict(str(wav), settings=FP32).embedding
    _assert_same_embeddings(torch.from_numpy(np.load(out)[:1]), reference[None])


def _assert_same_embeddings(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float rounding, as the front end spreads it: ``|x|^0.3`` turns the rounding of near-zero
    STFT bins into visible changes (PyTorch's own STFT in fp64 instead of fp32 moves these embeddings by
    0.3 % of their largest element), so elements may differ by 1 % of the largest; directions barely."""
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() <= 0.01 * expected.abs().max()
    assert torch.cosine_similarity(actual, expected).min() >= 0.9999


def test_predict_command_says_which_inference_precision_ran(model: Speech2Face, tmp_path: Path, capsys) -> None:
    import soundfile

    folder = model.save_pretrained(tmp_path / "model")
    wav = tmp_path / "voice.wav"
    soundfile.write(wav, speech(SECONDS, seed=1), 16_000)
    assert main(["predict", "--model", str(folder), str(wav), "--inference-precision", "fp32"]) == 0
    err = capsys.readouterr().err
    assert "inference: fp32 (asked for), channels-last, eager" in err
    args = ["predict", "--model", str(folder), str(wav), "--inference-precision", "bf16", "--batch-size", "4"]
    assert main(args) == 0
    assert "inference: bf16 (asked for), channels-last, eager" in capsys.readouterr().err


def test_eval_embeddings_go_through_the_fast_path(model: Speech2Face) -> None:
    from s2f.eval.data import predict_embeddings

    audio = [v.numpy() for v in _voices(3)]
    bf16 = predict_embeddings(model, audio, SECONDS, settings=BF16)
    assert model.last_inference.precision == "bf16"
    fp32 = predict_embeddings(model, audio, SECONDS, settings=FP32)
    assert not torch.equal(bf16, fp32)
    assert torch.cosine_similarity(bf16, fp32).min() >= TINY_WORST_COSINE

"""The pitch the conformer reads beside its spectrogram: YIN on the waveform inside the complex STFT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from s2f import ENCODERS, Speech2Face
from s2f.audio.loading import load_clip
from s2f.audio.spectrogram import SpectrogramFrontend
from s2f.encoders.pitch import PitchStatistics, voiced_quantiles

RATE = 16_000


def _harmonic_tone(f0_hz: float, seconds: float = 3.0, vibrato_st: float = 0.0) -> np.ndarray:
    """A voiced sound with falling harmonics (a glottal source's 1/h spectrum), optionally with vibrato."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = f0_hz * 2.0 ** (vibrato_st * np.sin(2 * np.pi * 5.0 * t) / 12.0)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    harmonics = int(4000 // (f0_hz * 1.1))
    wave = sum(np.sin(h * phase) / h for h in range(1, harmonics + 1))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def _statistics(tmp_path: Path, wave: np.ndarray, name: str = "clip") -> torch.Tensor:
    path = tmp_path / f"{name}.wav"
    sf.write(path, wave, RATE, subtype="PCM_16")  # the real format a user uploads, quantised to 16 bits
    spec = SpectrogramFrontend()(load_clip(path, seconds=len(wave) / RATE)[None])
    return PitchStatistics()(spec)[0]


@pytest.mark.parametrize("f0_hz", [75.0, 98.0, 131.0, 196.0, 262.0, 330.0])
def test_reads_the_pitch_of_a_recorded_voice_within_two_percent(tmp_path: Path, f0_hz: float) -> None:
    median_octaves, spread, voiced = _statistics(tmp_path, _harmonic_tone(f0_hz)).tolist()
    assert 150.0 * 2.0**median_octaves == pytest.approx(f0_hz, rel=0.02)
    assert spread < 0.05 and voiced > 0.9


def test_spread_follows_intonation_and_silence_reads_as_unvoiced(tmp_path: Path) -> None:
    steady = _statistics(tmp_path, _harmonic_tone(120.0), "steady")
    singing = _statistics(tmp_path, _harmonic_tone(120.0, vibrato_st=2.0), "vibrato")
    assert singing[1] > steady[1] + 0.15  # +/- 2 semitones spans a third of an octave
    pause = np.concatenate([_harmonic_tone(120.0, 1.5), np.zeros(int(1.5 * RATE), np.float32)])
    assert _statistics(tmp_path, pause, "pause")[2] == pytest.approx(0.5, abs=0.1)
    silent = PitchStatistics()(SpectrogramFrontend()(torch.zeros(1, 3 * RATE)))[0]  # the loader refuses silence
    assert silent.tolist() == [0.0, 0.0, 0.0]
    noise = np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32) * 0.1
    assert _statistics(tmp_path, noise, "noise")[2] < 0.2  # noise has no period


def test_the_head_reads_the_pitch_and_the_option_survives_saving(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_conformer_tiny", pitch_statistics=True).eval()
    spec = SpectrogramFrontend()(torch.from_numpy(_harmonic_tone(110.0))[None])
    with torch.no_grad():
        reference = encoder(spec)
        assert encoder.pitch is not None
        pitch = encoder.pitch(spec)
        encoder.pitch.forward = lambda _: pitch + torch.tensor([1.0, 0.0, 0.0])  # type: ignore[method-assign]
        assert not torch.allclose(encoder(spec), reference)  # an octave higher, all else equal: another face
        del encoder.pitch.forward
    model = Speech2Face(encoder, None, clip_seconds=3.0, teacher={"name": "dlib_resnet", "embed_dim": 64})
    reloaded = Speech2Face.from_pretrained(model.save_pretrained(tmp_path / "model"))
    assert reloaded.encoder.pitch is not None
    with torch.no_grad():
        assert torch.equal(reloaded.encoder(spec), reference)


def test_voiced_quantiles_are_torchs_quantiles_of_the_voiced_frames() -> None:
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(6, 75, generator=generator)
    voiced = torch.rand(6, 75, generator=generator) < torch.tensor([1.0, 0.7, 0.3, 0.05, 0.0, 0.5])[:, None]
    voiced[3] = False
    voiced[3, 10] = True  # one voiced frame: every quantile is its value
    levels = (0.1, 0.5, 0.9)
    ours = voiced_quantiles(values, voiced, levels)
    for row in range(6):
        if voiced[row].any():
            expected = torch.quantile(values[row][voiced[row]], torch.tensor(levels))
            torch.testing.assert_close(ours[row], expected, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(ours[row], torch.zeros(3))


@pytest.mark.slow  # the ONNX export: about 35 s
def test_the_demos_envelope_and_pitch_encoder_exports_to_onnx_and_runs_like_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from s2f.model.onnx import OnnxSpeech2Face, export_onnx

    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_conformer_tiny", pitch_statistics=True, envelope_only=True).eval()
    model = Speech2Face(encoder, None, clip_seconds=3.0, teacher={"name": "dlib_resnet", "embed_dim": 64}).eval()
    runner = OnnxSpeech2Face(export_onnx(model, tmp_path / "model.onnx"), threads=1)
    waves = torch.stack([torch.from_numpy(_harmonic_tone(f0, vibrato_st=1.0)) for f0 in (95.0, 210.0)])
    waves[:, RATE : 2 * RATE] = 0.0  # a pause: speech has unvoiced frames, which the statistics must skip
    with torch.inference_mode():
        expected = model(waves)
        expected_pitch = encoder.pitch(model.frontend(waves))  # type: ignore[misc]
    assert (expected_pitch[:, 1] > 0).all() and (expected_pitch[:, 2] < 0.8).all()
    actual = runner.embed(waves)
    # The tracker's statistics and the envelope go through the graph: the two pitches stay apart, as in PyTorch.
    assert torch.cosine_similarity(actual, expected).min() >= 0.9999
    assert not torch.allclose(expected[0], expected[1])

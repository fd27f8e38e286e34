"""Audio loading and the paper's STFT front end, checked against independent implementations."""

from __future__ import annotations

import io
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from media import tone, write_mp4, write_wav
from s2f.audio import SpectrogramFrontend, Waveform, fit_to_length, load_audio, load_clip, num_frames
from s2f.audio.spectrogram import signed_power
from s2f.errors import AudioError


def numpy_reference(wave: np.ndarray, power: float = 0.3) -> np.ndarray:
    """tf.signal.stft's framing in float64 numpy: 400-sample periodic Hann frames every 160, zero-padded to 512."""
    frames = np.lib.stride_tricks.sliding_window_view(wave.astype(np.float64), 400)[::160]
    spectrum = np.fft.rfft(frames * scipy.signal.get_window("hann", 400, fftbins=True), n=512)
    parts = np.stack([spectrum.real, spectrum.imag])
    return np.sign(parts) * np.abs(parts) ** power


@pytest.mark.host_sensitive
def test_six_seconds_give_598_by_257_and_match_numpy() -> None:
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 96_000).astype(np.float32)
    spec = SpectrogramFrontend()(torch.from_numpy(wave)[None])[0].numpy()
    assert spec.shape == (2, 598, 257)
    raw = numpy_reference(wave, power=1.0)
    np.testing.assert_allclose(SpectrogramFrontend(power=1.0)(torch.from_numpy(wave)[None])[0].numpy(), raw, atol=1e-4)
    # |x|^0.3 has slope 0.3|x|^-0.7: near zero it magnifies float32 FFT rounding (1e-7 at |x| = 1e-6 becomes 5e-4),
    # so the compressed values are held to 1e-4 wherever the compression is not that ill-conditioned.
    conditioned = np.abs(raw) > 1e-3
    assert conditioned.mean() > 0.99
    np.testing.assert_allclose(spec[conditioned], numpy_reference(wave)[conditioned], atol=1e-4)


@pytest.mark.host_sensitive
def test_magnitude_matches_librosa() -> None:
    wave = tone(3.0, 300.0)
    spec = SpectrogramFrontend()(torch.from_numpy(wave)[None])[0].double().numpy()
    real, imag = (np.sign(p) * np.abs(p) ** (1 / 0.3) for p in spec)
    ours = np.hypot(real, imag)
    # librosa frames 512 samples and centres the 400-point window in them: padding the signal by 56 on each
    # side gives the same 598 frames per 6 s, with a phase shift but the same magnitude.
    padded = np.pad(wave.astype(np.float64), 56)
    theirs = np.abs(librosa.stft(padded, n_fft=512, hop_length=160, win_length=400, center=False)).T
    assert ours.shape == theirs.shape == (num_frames(48_000), 257)
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * theirs.max())


def test_frontend_is_batched_and_autocast_safe() -> None:
    waves = torch.randn(3, 48_000)
    frontend = SpectrogramFrontend()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batched = frontend(waves)
    assert batched.dtype == torch.float32 and batched.shape == (3, 2, 298, 257)
    torch.testing.assert_close(batched[1], frontend(waves[1:2])[0])


def test_the_compression_and_its_inverse_agree_with_and_without_gradients() -> None:
    values = torch.randn(10_000, dtype=torch.float32) * 10.0 ** torch.empty(10_000).uniform_(-6, 2)
    values[:3] = torch.tensor([0.0, -0.0, 1.0])
    fast = signed_power(values, 0.3)  # no gradient wanted: exp and log
    leaf = values.clone().requires_grad_()
    exact = signed_power(leaf, 0.3)  # a gradient wanted: pow, as autograd knows it
    torch.testing.assert_close(fast, exact.detach(), rtol=1e-6, atol=0.0)
    assert fast[0] == fast[1] == 0.0 and fast[2] == 1.0
    torch.testing.assert_close(signed_power(fast, 1 / 0.3), values, rtol=1e-5, atol=0.0)
    exact[values != 0].sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad[values != 0]).all()


def test_the_in_place_compression_gives_the_bits_of_its_out_of_place_form_and_leaves_its_input_alone() -> None:
    values = torch.randn(2, 2, 50, 257) * 10.0 ** torch.empty(2, 2, 50, 257).uniform_(-38, 2)
    values[0, 0, 0, :3] = torch.tensor([0.0, -0.0, 1e-40])  # zeros and a denormal
    before = values.clone()
    out_of_place = values.sign() * torch.exp(torch.log(values.abs()) * 0.3)
    assert torch.equal(signed_power(values, 0.3), out_of_place)
    assert torch.equal(values, before)


def test_fit_to_length_crops_and_loop_repeats() -> None:
    wave = torch.arange(5.0)
    assert fit_to_length(wave, 3).tolist() == [0, 1, 2]
    assert fit_to_length(wave, 12).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert fit_to_length(torch.ones(2, 4), 6).shape == (2, 6)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp4"])
def test_load_audio_reads_real_files(tmp_path: Path, suffix: str) -> None:
    samples = tone(1.0, 440.0)
    path = tmp_path / f"voice{suffix}"
    if suffix == ".mp4":
        write_mp4(path, samples, frames=10)
    else:
        write_wav(path, samples)
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert abs(wave.numel() - 16_000) <= 2048  # AAC adds priming samples
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 16_000 / wave.numel() - 440.0) < 5


def test_stereo_44k_becomes_mono_16k_and_keeps_pitch(tmp_path: Path) -> None:
    left = tone(1.0, 1000.0, sample_rate=44_100)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, left], axis=1), sample_rate=44_100)
    wave = load_audio(path)
    assert wave.numel() == 16_000
    assert abs(np.argmax(np.abs(np.fft.rfft(wave.numpy()))) - 1000) <= 1


def test_file_objects_waveforms_and_pairs_agree(tmp_path: Path) -> None:
    samples = tone(0.5)
    path = write_wav(tmp_path / "a.wav", samples, subtype="FLOAT")
    from_path = load_audio(path)
    with path.open("rb") as handle:
        from_handle = load_audio(handle)
    from_bytes = load_audio(io.BytesIO(path.read_bytes()))
    from_pair = load_audio((torch.from_numpy(samples), 16_000))
    from_waveform = load_audio(Waveform(samples, 16_000))
    for other in (from_handle, from_bytes, from_pair, from_waveform):
        torch.testing.assert_close(other, from_path)


def test_load_clip_repeats_short_clips_to_six_seconds(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "short.wav", tone(2.5), subtype="FLOAT")
    clip = load_clip(path, seconds=6.0)
    assert clip.numel() == 96_000
    torch.testing.assert_close(clip[40_000:80_000], clip[:40_000])


def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.wav"
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(16_000, dtype=np.float32))
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    video_only = write_mp4(tmp_path / "video_only.mp4", None, frames=5)
    cases = {
        missing: "no such audio file",
        garbage: "unreadable",
        silent: "silent",
        empty: "empty",
        video_only: "no audio",
    }
    for path, reason in cases.items():
        with pytest.raises(AudioError) as caught:
            load_audio(path)
        message = str(caught.value)
        assert str(path) in message and reason in message and "\n" not in message

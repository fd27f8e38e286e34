"""The spectral envelope: the vocal tract's shape kept, the source's harmonics (its pitch) gone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import lfilter

from s2f import ENCODERS
from s2f.audio.envelope import spectral_envelope
from s2f.audio.loading import load_clip
from s2f.audio.spectrogram import SpectrogramFrontend

RATE = 16_000


def _vowel(f0_hz: float, formants_hz: tuple[float, ...], seconds: float = 2.0) -> np.ndarray:
    """A pulse train at ``f0_hz`` through two-pole resonators at ``formants_hz``: a sustained vowel."""
    pulses = np.zeros(int(seconds * RATE))
    pulses[:: round(RATE / f0_hz)] = 1.0
    wave = pulses
    for formant in formants_hz:
        radius = np.exp(-np.pi * 80.0 / RATE)  # 80 Hz bandwidth
        wave = lfilter([1.0], [1.0, -2 * radius * np.cos(2 * np.pi * formant / RATE), radius**2], wave)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def _log_envelope(tmp_path: Path, wave: np.ndarray, name: str) -> torch.Tensor:
    sf.write(tmp_path / f"{name}.wav", wave, RATE, subtype="PCM_16")
    spec = SpectrogramFrontend()(load_clip(tmp_path / f"{name}.wav", seconds=len(wave) / RATE)[None])
    envelope = spectral_envelope(spec)[0, 0, 20:-20].pow(1 / 0.3)  # steady frames
    return torch.log(envelope).mean(0)[:128]  # up to 4 kHz


def test_the_envelope_follows_the_formants_and_ignores_the_pitch(tmp_path: Path) -> None:
    a_low = _log_envelope(tmp_path, _vowel(100.0, (700.0, 1200.0, 2600.0)), "a_low")
    a_high = _log_envelope(tmp_path, _vowel(200.0, (700.0, 1200.0, 2600.0)), "a_high")
    i_low = _log_envelope(tmp_path, _vowel(100.0, (300.0, 2300.0, 3000.0)), "i_low")
    pitch_change = (a_low - a_high).std()  # a level offset is not a shape change
    vowel_change = (a_low - i_low).std()
    assert vowel_change > 3 * pitch_change
    # The envelope's peaks sit at the formants: /a/'s first formant region is above /i/'s there.
    bin_of = lambda hz: round(hz / (RATE / 512))  # noqa: E731
    assert a_low[bin_of(700)] - a_low[bin_of(1600)] > 1.0
    assert i_low[bin_of(2300)] - i_low[bin_of(1200)] > 1.0


def _liftered_by_ffts(spec: torch.Tensor, lifter: int = 24, power: float = 0.3) -> torch.Tensor:
    """The envelope as the cepstrum defines it, in float64: |x| undone from the power law, log, inverse FFT,
    the low quefrencies kept, FFT, compressed again."""
    magnitude = spec.double().abs().pow(2.0 / power).sum(1).sqrt()
    log = torch.log(magnitude + 1e-5 * magnitude.amax(dim=(1, 2), keepdim=True) + 1e-12)
    size = 2 * (spec.shape[-1] - 1)
    keep = torch.zeros(size, dtype=torch.float64)
    keep[:lifter] = 1.0
    keep[size - lifter + 1 :] = 1.0
    log_envelope = torch.fft.rfft(torch.fft.irfft(log, n=size, dim=-1) * keep, n=size, dim=-1).real
    return torch.exp(log_envelope * power)


def test_the_envelope_is_the_liftered_cepstrum_on_every_bin_and_on_the_band_alone() -> None:
    torch.manual_seed(0)
    wave = torch.randn(3, 16_000) * torch.linspace(0.0, 1.0, 16_000)  # from silence up
    wave[1] = 0.0  # a silent clip stays finite
    wave[2, :6_000] = 0.0
    spec = SpectrogramFrontend()(wave)
    envelope = spectral_envelope(spec)
    assert envelope.shape == spec.shape and torch.isfinite(envelope).all()
    assert (envelope[:, 1] == 0).all()  # zero phase
    torch.testing.assert_close(envelope[:, 0].double(), _liftered_by_ffts(spec), rtol=1e-4, atol=1e-5)
    band = spectral_envelope(spec, bins=129)
    assert band.shape == (3, 2, spec.shape[2], 129)
    torch.testing.assert_close(band, envelope[..., :129])
    # Under bf16 autocast (s2f's inference on bf16 hosts) the envelope is still computed in fp32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(spectral_envelope(spec, bins=129), band)


def test_an_envelope_only_conformer_reads_the_envelope_and_takes_pitch_from_its_tracker() -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_conformer_tiny", envelope_only=True, pitch_statistics=True).eval()
    hearing = ENCODERS.create("s2f_conformer_tiny", pitch_statistics=True).eval()
    hearing.load_state_dict(encoder.state_dict())
    spec = SpectrogramFrontend()(torch.from_numpy(_vowel(100.0, (700.0, 1200.0, 2600.0)))[None])
    with torch.no_grad():
        assert encoder.pitch is not None and hearing.pitch is not None
        pitch = encoder.pitch(spec)
        # The blocks see the envelope only, the head the tracker's pitch of the original clip.
        hearing.pitch.forward = lambda _: pitch  # type: ignore[method-assign]
        torch.testing.assert_close(encoder(spec), hearing(spectral_envelope(spec)))
        assert not torch.allclose(encoder(spec), hearing(spec))

"""benchmarks/own_voice.py's spectrum tools: a clip's long-term slope, and the same clip tilted, read from WAV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers.scripts import benchmark_module

RATE = 16_000


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("own_voice") as module:
        yield module


def _noise_falling(db_per_octave: float, seconds: float = 4.0) -> np.ndarray:
    """Gaussian noise whose power falls ``db_per_octave`` per octave: a long-term spectrum of known slope."""
    rng = np.random.default_rng(0)
    spectrum = np.fft.rfft(rng.standard_normal(int(seconds * RATE)))
    hertz = np.fft.rfftfreq(int(seconds * RATE), 1.0 / RATE)
    spectrum *= 10.0 ** (db_per_octave * np.log2(np.maximum(hertz, 50.0) / 1000.0) / 20.0)
    audio = np.fft.irfft(spectrum)
    return 0.5 * audio / np.abs(audio).max()


def test_the_slope_of_a_known_spectrum_is_read_back(bench) -> None:
    for slope in (-12.0, -6.0, 0.0):
        assert bench.spectral_slope(_noise_falling(slope), RATE) == pytest.approx(slope, abs=0.5)


def test_a_tilted_clip_is_brighter_by_the_tilt_and_keeps_its_peak(bench, tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    soundfile.write(path, _noise_falling(-10.0), RATE, subtype="PCM_16")
    before = bench.spectral_slope(soundfile.read(path)[0], RATE)
    for tilt in (6.0, -6.0):
        audio, rate = bench.tilted(str(path), tilt)
        assert rate == RATE and audio.dtype == np.float32
        assert np.abs(audio).max() == pytest.approx(np.abs(soundfile.read(path)[0]).max(), rel=1e-3)
        # The tilt bends in around 1 kHz, so between 1 and 4 kHz it reaches 0.7-1.0 of its full slope.
        change = bench.spectral_slope(audio, rate) - before
        assert 0.7 * abs(tilt) < abs(change) < abs(tilt) and np.sign(change) == np.sign(tilt)

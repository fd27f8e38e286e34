"""benchmarks/own_voice.py's spectrum tools: a clip's long-term slope, and the same clip tilted, read from WAV files."""

from __future__ import annotations

import itertools
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


def _band_power_db(audio: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    hertz = np.fft.rfftfreq(len(audio), 1.0 / RATE)
    return float(10 * np.log10(power[(hertz >= low) & (hertz < high)].mean()))


@pytest.mark.parametrize("gain_db", [10.0, -10.0])
def test_a_banded_clip_moves_its_band_by_the_gain_and_leaves_far_bands_alone(bench, gain_db: float) -> None:
    flat = _noise_falling(0.0).astype(np.float32)
    for low, high, inside, outside in (
        (0.0, 600.0, (50, 400), (2000, 6000)),
        (2500.0, 3900.0, (2900, 3500), (200, 800)),
    ):
        changed = bench.banded(flat, low, high, gain_db)
        assert changed.dtype == np.float32
        moved = _band_power_db(changed, *inside) - _band_power_db(flat, *inside)
        assert moved == pytest.approx(gain_db, abs=2.5)  # the band's middle; its slopes take less
        assert abs(_band_power_db(changed, *outside) - _band_power_db(flat, *outside)) < 1.0
    assert bench.banded(flat, 0.0, 600.0, 0.0) is flat  # no change, no copy


def test_band_energies_share_a_clips_energy_out_by_band(bench) -> None:
    """Two tones of equal power, one in the women's pitch band and one among the first formants, and a third
    tone 10 dB weaker above 1 kHz: each band reads its tone's share of the 0-4 kHz energy."""
    time = np.arange(4 * RATE) / RATE
    audio = (
        np.sin(2 * np.pi * 200 * time) + np.sin(2 * np.pi * 800 * time) + 10 ** (-0.5) * np.sin(2 * np.pi * 1500 * time)
    )
    energies = dict(zip(itertools.pairwise(bench.BAND_EDGES_HZ), bench.band_energies(audio, RATE), strict=True))
    total = 2 + 0.1
    assert energies[(150, 250)] == pytest.approx(10 * np.log10(1 / total), abs=0.2)
    assert energies[(600, 1000)] == pytest.approx(10 * np.log10(1 / total), abs=0.2)
    assert energies[(1000, 2000)] == pytest.approx(10 * np.log10(0.1 / total), abs=0.2)
    assert energies[(80, 150)] < -30 and energies[(2000, 4000)] < -30

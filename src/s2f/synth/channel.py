"""Rooms and microphones: what happens to a voice between the mouth and the file.

:func:`room_and_microphone` gives a clip a room (a synthetic impulse response: a direct path and an
exponentially decaying diffuse tail, reverberation time 0.1-0.8 s, or none), a microphone or phone
band (high-pass 60-300 Hz, low-pass 3.4-7.8 kHz), a gentle random tilt, and noise (white, pink or
hum) at 10-40 dB SNR; with ``telephone`` > 0, that share of clips then goes through a telephone
line (sampled at 8 kHz, so nothing above 4 kHz, and 8-bit mu-law). The world uses none: a third
of clips on the phone made the quick demo's model worse both on the world and on the development
real voices (docs/synth.md). Everything is drawn from the clip's generator and says nothing about
the speaker.

Example:
    >>> import numpy as np
    >>> tone = np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)
    >>> out = room_and_microphone(tone, np.random.default_rng(0))
    >>> out.shape, bool(np.isfinite(out).all())
    ((16000,), True)
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from .voice import SAMPLE_RATE

__all__ = ["room_and_microphone"]


def _impulse_response(rng: np.random.Generator) -> np.ndarray:
    """A direct path then a diffuse tail that decays by 60 dB over the reverberation time."""
    rt60 = float(rng.uniform(0.1, 0.8))
    length = int(min(rt60, 0.5) * SAMPLE_RATE)
    time = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * time / rt60)
    # Walls absorb highs first: the tail is darker than the direct sound.
    tail = scipy.signal.sosfilt(
        scipy.signal.butter(1, float(rng.uniform(1500, 6000)), fs=SAMPLE_RATE, output="sos"), tail
    )
    predelay = int(rng.uniform(0.002, 0.02) * SAMPLE_RATE)
    response = np.zeros(length + predelay)
    response[0] = 1.0
    direct_to_reverberant = 10.0 ** (float(rng.uniform(-3.0, 12.0)) / 20.0)
    response[predelay:] += tail / (np.sqrt((tail**2).sum()) * direct_to_reverberant + 1e-12)
    return response


def _noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(3))
    white = rng.standard_normal(samples)
    if kind == 0:
        return white
    if kind == 1:  # pink: -3 dB per octave
        spectrum = np.fft.rfft(white)
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        return np.fft.irfft(spectrum, samples)
    hum = float(rng.choice([50.0, 60.0]))
    time = np.arange(samples) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * hum * k * time + rng.uniform(0, 6.3)) / k for k in (1, 2, 3)) + 0.1 * white


def _telephone(audio: np.ndarray) -> np.ndarray:
    """Sampled at 8 kHz (a sharp cut at 4 kHz) and mu-law coded at 8 bits, back at 16 kHz."""
    narrow = scipy.signal.resample_poly(audio, 1, 2)
    peak = float(np.abs(narrow).max()) or 1.0
    mu = 255.0
    coded = np.sign(narrow / peak) * np.log1p(mu * np.abs(narrow / peak)) / np.log1p(mu)
    coded = np.round(coded * 127.0) / 127.0
    narrow = peak * np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return scipy.signal.resample_poly(narrow, 2, 1)[: audio.size]


def room_and_microphone(audio: np.ndarray, rng: np.random.Generator, *, telephone: float = 0.0) -> np.ndarray:
    """``audio`` (16 kHz) as a random room and microphone would record it; float64, same length.

    Args:
        audio: The dry voice.
        rng: Draws the room, the microphone and the noise.
        telephone: Share of clips sent through a telephone line afterwards (none by default).
    """
    samples = audio.size
    out = np.asarray(audio, np.float64)
    if rng.random() < 0.7:
        out = scipy.signal.fftconvolve(out, _impulse_response(rng))[:samples]
    low = float(rng.uniform(60.0, 300.0))
    high = float(rng.uniform(3400.0, 7800.0))
    out = scipy.signal.sosfilt(scipy.signal.butter(2, [low, high], btype="band", fs=SAMPLE_RATE, output="sos"), out)
    # A gentle tilt of +/- 3 dB per octave-ish: a first-order shelf at 1 kHz.
    lows = scipy.signal.sosfilt(scipy.signal.butter(1, 1000.0, fs=SAMPLE_RATE, output="sos"), out)
    out = lows + (out - lows) * 10.0 ** (float(rng.uniform(-4.0, 4.0)) / 20.0)
    power = float((out**2).mean()) or 1e-12
    noise = _noise(samples, rng)
    snr_db = float(rng.uniform(10.0, 40.0))
    noise *= np.sqrt(power / (float((noise**2).mean()) or 1e-12) / 10.0 ** (snr_db / 10.0))
    out = out + noise
    return _telephone(out) if telephone and rng.random() < telephone else out

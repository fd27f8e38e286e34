"""Rooms and microphones for training batches: the world's clean voices as recordings would carry them.

The world's voices are dry source-filter sound (docs/synth.md), while the voices ``s2f predict`` meets
were recorded in rooms, through microphones, phones and codecs. An encoder that has only heard dry
voices reads a recording's reverberation, band and tilt as part of the voice: real men's voices
went to women's faces. :class:`RoomAndMicrophone` gives a share of each training batch a random
room, microphone band, tilt and noise, drawn as :func:`s2f.synth.channel.room_and_microphone` draws
them, so the encoder learns what stays of a voice through all of them.

Written for whole batches on the model's device rather than calling that NumPy function per clip:
every linear part (the room's impulse response, the band-pass, the tilt) is one frequency response,
so a batch costs one FFT there and back (``benchmarks/demo_encoder_step.py`` times it as a part of
the demo's training step). The responses are magnitude-only except the room's: a zero-phase band and tilt change
what the spectrogram shows the same way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TILT_DB_PER_OCTAVE", "RoomAndMicrophone", "tilt_gain"]

TILT_DB_PER_OCTAVE = (-5.0, 5.0)
"""The range of the tilt's slope above 1 kHz: microphones, rooms and vocal effort move a recording's
spectral slope by several dB per octave, and an encoder that read the slope drew real voices by it (the
world's and recorded speech's slopes differ; docs/synth.md, "Why real men were drawn as women"). Chosen
over the world's development seeds 0-3 on their val splits and the development voices."""


def tilt_gain(hertz: torch.Tensor, db_per_octave: torch.Tensor | float) -> torch.Tensor:
    """The tilt's amplitude gain at ``hertz``: flat below 1 kHz, ``db_per_octave`` per octave above it, bending
    in around 1 kHz (``log2(1 + (f / 1 kHz)^2) / 2`` octaves). Shared by the rooms and by
    ``benchmarks/own_voice.py report --tilt-db-per-octave``, which tilts real voices the same way."""
    octaves = 0.5 * torch.log2(1.0 + (hertz / 1000.0).square())
    return 10.0 ** (db_per_octave * octaves / 20.0)


class RoomAndMicrophone(nn.Module):
    """Random rooms, microphone bands, tilts and noise for a share of a batch's clips.

    Each chosen clip gets, drawn independently: a room in 70 % of cases (a direct path, then a diffuse
    tail decaying 60 dB over a reverberation time of 0.1-0.8 s, darkened by a first-order low-pass at
    1.5-6 kHz, 2-20 ms after the direct sound, direct-to-reverberant ratio -3 to 12 dB), a band of
    60-300 Hz to 3.4-7.8 kHz (second-order Butterworth slopes), a tilt of the spectrum above 1 kHz
    by a slope drawn from ``tilt_db_per_octave`` (dB per octave), and white, pink or mains-hum noise
    at 10-40 dB SNR. Each clip keeps its peak level. The draws come from torch's generator on the
    batch's device, so ``seed_everything`` makes them repeatable.

    Args:
        share: Probability that a clip is augmented (0 turns the module into the identity).
        sample_rate: The audio's rate.
        tilt_db_per_octave: The range ``(low, high)`` the tilt's slope is drawn from, uniformly.
    """

    def __init__(
        self, share: float, sample_rate: int = 16_000, tilt_db_per_octave: tuple[float, float] = TILT_DB_PER_OCTAVE
    ) -> None:
        super().__init__()
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must lie in [0, 1], got {share}")
        low, high = (float(value) for value in tilt_db_per_octave)
        if low > high:
            raise ValueError(f"tilt_db_per_octave is a range (low, high), got {tuple(tilt_db_per_octave)}")
        self.tilt_db_per_octave = (low, high)
        self.share = share
        self.sample_rate = sample_rate
        self.max_tail = int(0.5 * sample_rate) + int(0.02 * sample_rate)  # the longest room and its delay

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, N] float audio -> [B, N], the chosen clips recorded, the others untouched."""
        if self.share == 0.0 or not audio.numel():
            return audio
        chosen = torch.rand(audio.shape[0], device=audio.device) < self.share
        if not bool(chosen.any()):
            return audio
        clips = audio[chosen].float()
        recorded = self._record(clips)
        peak = clips.abs().amax(-1, keepdim=True)
        recorded = recorded * (peak / recorded.abs().amax(-1, keepdim=True).clamp_min(1e-9))
        out = audio.clone()
        out[chosen] = recorded.to(audio.dtype)
        return out

    def _uniform(self, count: int, low: float, high: float, device: torch.device) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, device=device)

    def _record(self, clips: torch.Tensor) -> torch.Tensor:
        count, samples = clips.shape
        device = clips.device
        size = samples + self.max_tail
        hertz = torch.fft.rfftfreq(size, 1.0 / self.sample_rate, device=device)[None]  # [1, F]
        response = self._room(count, size, hertz) * self._band(count, hertz) * self._tilt(count, hertz)
        wet = torch.fft.irfft(torch.fft.rfft(clips, n=size) * response, n=size)[:, :samples]
        power = wet.square().mean(-1, keepdim=True).clamp_min(1e-12)
        noise = self._noise(count, samples, device)
        snr_db = self._uniform(count, 10.0, 40.0, device)[:, None]
        noise = noise * torch.sqrt(power / noise.square().mean(-1, keepdim=True).clamp_min(1e-12) / 10 ** (snr_db / 10))
        return wet + noise

    def _room(self, count: int, size: int, hertz: torch.Tensor) -> torch.Tensor:
        """The impulse responses' spectra [count, F]: 1 (a dry recording) for the 30 % without a room.

        Built in the frequency domain: the tail's noise is transformed once, then darkened, delayed and
        scaled there (its energy by Parseval), so a room costs one FFT.
        """
        rate, device = self.sample_rate, hertz.device
        length = int(0.5 * rate)
        time = torch.arange(length, device=device)[None] / rate
        rt60 = self._uniform(count, 0.1, 0.8, device)[:, None]
        # 60 dB down at rt60, and cut where a longer room would outlast half a second.
        tail = torch.randn(count, length, device=device) * torch.exp(-3.0 * math.log(10.0) * time / rt60)
        tail = tail * (time < rt60)
        # The walls absorb highs first: a first-order low-pass at 1.5-6 kHz darkens the tail.
        # The one-pole filter's own frequency response (causal, as a recursive filter is), not the analog one.
        cutoff = self._uniform(count, 1500.0, 6000.0, device)[:, None]
        pole = torch.exp(-2 * math.pi * cutoff / rate)
        delay = torch.polar(torch.ones_like(hertz), -2 * math.pi * hertz / rate)
        spectrum = torch.fft.rfft(tail, n=size) * (1 - pole) / (1 - pole * delay)
        # Whole samples: a fractional delay would spread the tail over the whole (circular) response.
        predelay = (self._uniform(count, 0.002, 0.02, device)[:, None] * rate).round() / rate
        spectrum = spectrum * torch.polar(torch.ones_like(hertz), -2 * math.pi * hertz * predelay)
        # Parseval over a real signal's half spectrum: the bins between DC and Nyquist count twice.
        weights = torch.full_like(hertz, 2.0)
        weights[:, 0] = 1.0
        if size % 2 == 0:
            weights[:, -1] = 1.0
        energy = (spectrum.abs().square() * weights).sum(-1, keepdim=True) / size
        direct_to_reverberant = 10.0 ** (self._uniform(count, -3.0, 12.0, device)[:, None] / 20.0)
        spectrum = spectrum / (energy.sqrt() * direct_to_reverberant + 1e-12)
        room = torch.rand(count, 1, device=device) < 0.7
        return 1.0 + torch.where(room, spectrum, torch.zeros_like(spectrum))

    def _band(self, count: int, hertz: torch.Tensor) -> torch.Tensor:
        """A microphone's or phone's band: second-order Butterworth magnitudes at both ends."""
        device = hertz.device
        low = self._uniform(count, 60.0, 300.0, device)[:, None]
        high = self._uniform(count, 3400.0, 7800.0, device)[:, None]
        high_pass = torch.rsqrt(1.0 + (low / hertz.clamp_min(1e-3)).square().square())
        low_pass = torch.rsqrt(1.0 + (hertz / high).square().square())
        return high_pass * low_pass

    def _tilt(self, count: int, hertz: torch.Tensor) -> torch.Tensor:
        """A slope above 1 kHz in dB per octave, drawn from ``tilt_db_per_octave``; flat below, bending in at 1 kHz."""
        low, high = self.tilt_db_per_octave
        return tilt_gain(hertz, self._uniform(count, low, high, hertz.device)[:, None])

    def _noise(self, count: int, samples: int, device: torch.device) -> torch.Tensor:
        """White, pink (-3 dB per octave) or mains hum with its first two harmonics, one kind per clip."""
        white = torch.randn(count, samples, device=device)
        spectrum = torch.fft.rfft(white)
        bins = torch.arange(spectrum.shape[-1], device=device).clamp_min(1)
        pink = torch.fft.irfft(spectrum * bins.rsqrt(), n=samples)
        # 50 and 60 Hz hum both repeat every 0.1 s: one period of that is computed, then tiled.
        period = self.sample_rate // 10
        time = torch.arange(period, device=device)[None] / self.sample_rate
        mains = torch.where(torch.rand(count, 1, device=device) < 0.5, 50.0, 60.0)
        phase = 2 * math.pi * torch.rand(count, 3, device=device)
        harmonics = torch.arange(1, 4, device=device)[:, None, None]  # [3, 1, 1]
        cycle = (torch.sin(2 * math.pi * mains * harmonics * time + phase.T[:, :, None]) / harmonics).sum(0)
        hum = cycle.repeat(1, -(-samples // period))[:, :samples] + 0.1 * white
        kind = torch.randint(0, 3, (count, 1), device=device)
        return torch.where(kind == 0, white, torch.where(kind == 1, pink, hum))

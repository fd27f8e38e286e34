"""The voice's pitch, read from the encoder's own input: YIN on the waveform the complex STFT holds.

A network that learns pitch from harmonic patterns learns it for the voices it trained on; a pitch
tracker reads it the same way in synthetic and recorded speech. The complex STFT is invertible, so
the tracker needs no second input: overlap-add gives the waveform back, and YIN (de Cheveigne and
Kawahara, 2002) reads its period frame by frame.

Written here rather than taken from a library because it runs inside the model: batched, on the
model's device, exportable to ONNX. ``librosa.yin`` and pYIN run on NumPy arrays one clip at a time;
``torchaudio.functional.detect_pitch_frequency`` takes a normalised cross-correlation peak per frame,
without YIN's cumulative normalisation that guards against octave errors. ``torch.istft`` centres
its window in the FFT frame, while this front end frames as TensorFlow does (window at the start), so
the overlap-add is written out with ``F.fold``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..audio.spectrogram import signed_power

__all__ = ["PitchStatistics", "voiced_quantiles"]


class PitchStatistics(nn.Module):
    """Complex power-law STFT [B, 2, T, bins] -> per-clip pitch statistics [B, 3].

    The three numbers: the median log-f0 of voiced frames (in octaves above 150 Hz), its spread
    (90th minus 10th percentile, octaves), and the voiced fraction. A clip with no voiced frame
    reads as 150 Hz with no spread. No gradient flows through them: they are the input's, not learned.

    Args:
        sample_rate, n_fft, win_length, hop_length, power: The spectrogram's framing
            (:class:`~s2f.audio.spectrogram.SpectrogramFrontend`'s defaults).
        fmin_hz, fmax_hz: The pitch range searched (60-420 Hz holds adult speech).
        threshold: YIN's aperiodicity threshold for the first dip; frames whose best dip stays
            above twice it count as unvoiced.
        decimation: Pitch lives below 4 kHz, so only the lower ``1 / decimation`` of the bins is
            inverted, which gives the waveform at a lower rate for free.
        frame_step_s: Hop between YIN frames; the statistics need no finer time grid.
    """

    num_features = 3

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        power: float = 0.3,
        fmin_hz: float = 60.0,
        fmax_hz: float = 420.0,
        threshold: float = 0.15,
        decimation: int = 2,
        frame_step_s: float = 0.04,
    ) -> None:
        super().__init__()
        if n_fft % (2 * decimation) or win_length % decimation or hop_length % decimation:
            raise ValueError(f"decimation {decimation} must divide the STFT's sizes")
        self.bins = n_fft // (2 * decimation) + 1
        self.n_fft, self.win_length = n_fft // decimation, win_length // decimation
        self.hop_length = hop_length // decimation
        self.power = power
        sample_rate = sample_rate // decimation
        self.sample_rate = sample_rate
        self.tau_min = int(sample_rate // fmax_hz)
        self.tau_max = math.ceil(sample_rate / fmin_hz)
        self.integration = 2 * self.tau_max  # YIN's window: two of the longest periods
        self.frame = self.integration + self.tau_max
        self.frame_hop = int(sample_rate * frame_step_s)
        self.threshold = threshold
        with torch.device("cpu"):
            window = torch.hann_window(self.win_length, periodic=True)
        self.window: torch.Tensor
        self.register_buffer("window", window, persistent=False)

    def waveform(self, spec: torch.Tensor) -> torch.Tensor:
        """Overlap-add inverse of the framing: [B, 2, T, bins] -> [B, samples]."""
        low = spec[..., : self.bins].float()
        parts = signed_power(low, 1.0 / self.power)
        spectrum = torch.complex(parts[:, 0], parts[:, 1])
        frames = torch.fft.irfft(spectrum, n=self.n_fft, dim=-1)[..., : self.win_length]
        frames = frames * self.window  # [B, T, win]
        count = frames.shape[1]
        length = (count - 1) * self.hop_length + self.win_length
        folded = F.fold(frames.transpose(1, 2), (1, length), (1, self.win_length), stride=(1, self.hop_length))
        norm = F.fold(
            self.window.square()[None, :, None].expand(1, -1, count),
            (1, length),
            (1, self.win_length),
            stride=(1, self.hop_length),
        )
        return (folded / norm.clamp_min(1e-3)).flatten(1)

    def periods(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """YIN per frame: (period in samples, aperiodicity, frame energy), each [B, frames]."""
        frames = wave.unfold(1, self.frame, self.frame_hop)  # [B, N, frame]
        frames = frames - frames.mean(-1, keepdim=True)
        size = 1 << (2 * self.frame - 1).bit_length()
        spectrum = torch.fft.rfft(frames, n=size)
        head = torch.fft.rfft(frames[..., : self.integration], n=size)
        cross = torch.fft.irfft(spectrum * head.conj(), n=size)[..., : self.tau_max + 1]  # r(tau)
        squares = F.pad(frames.square().cumsum(-1), (1, 0))
        taus = torch.arange(self.tau_max + 1, device=wave.device)
        energy_head = squares[..., self.integration : self.integration + 1]
        energy_shifted = squares[..., taus + self.integration] - squares[..., taus]
        difference = (energy_head + energy_shifted - 2 * cross).clamp_min(0)
        cumulative = difference[..., 1:].cumsum(-1)
        normalised = torch.ones_like(difference)
        normalised[..., 1:] = difference[..., 1:] * taus[1:] / cumulative.clamp_min(1e-12)
        search = normalised[..., self.tau_min : self.tau_max]
        below = search < self.threshold
        # The first dip under the threshold, followed down to its trough; else the deepest point.
        first = torch.where(below.any(-1), below.float().argmax(-1), search.argmin(-1))
        offsets = torch.arange(0, self.tau_min, device=wave.device)
        window = (first[..., None] + offsets).clamp_max(search.shape[-1] - 1)
        trough = search.gather(-1, window).argmin(-1)
        index = first + trough
        aperiodicity = search.gather(-1, index[..., None])[..., 0]
        # A parabola through the trough and its neighbours places the period between samples.
        left = search.gather(-1, (index - 1).clamp_min(0)[..., None])[..., 0]
        right = search.gather(-1, (index + 1).clamp_max(search.shape[-1] - 1)[..., None])[..., 0]
        curvature = left - 2 * aperiodicity + right
        shift = torch.where(
            curvature > 1e-6, 0.5 * (left - right) / curvature.clamp_min(1e-6), torch.zeros_like(curvature)
        )
        return (
            (index + self.tau_min).float() + shift.clamp(-0.5, 0.5),
            aperiodicity,
            energy_head[..., 0] / self.integration,
        )

    @torch.no_grad()
    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        wave = self.waveform(spec)
        period, aperiodicity, energy = self.periods(wave)
        loud = energy > 1e-3 * energy.amax(-1, keepdim=True)
        voiced = loud & (aperiodicity < 2 * self.threshold)
        octaves = torch.log2(self.sample_rate / period / 150.0)
        low, median, high = voiced_quantiles(octaves, voiced, (0.1, 0.5, 0.9)).unbind(-1)
        return torch.stack([median, high - low, voiced.float().mean(-1)], dim=-1)


def voiced_quantiles(values: torch.Tensor, voiced: torch.Tensor, levels: tuple[float, ...]) -> torch.Tensor:
    """Quantiles [B, len(levels)] of each row's voiced values, interpolated as :func:`torch.quantile`; 0 where none.

    Written with a sort and a gather rather than ``torch.nanquantile`` over NaN-masked frames: the ONNX
    export of ``nanquantile`` counted the NaNs as values, so an exported model read the pitch of every clip
    with unvoiced frames wrong (its median off by up to an octave, its spread zero).
    """
    ordered = torch.where(voiced, values, torch.full_like(values, float("inf"))).sort(-1).values
    count = voiced.sum(-1, keepdim=True)
    fractions = torch.tensor(levels, dtype=values.dtype, device=values.device)
    position = fractions * (count - 1).clamp_min(0).to(values.dtype)  # [B, levels]
    below = position.floor()
    lower = ordered.gather(-1, below.long())
    upper = ordered.gather(-1, position.ceil().long())
    # Where lower == upper the weight is zero; computed as a blend so no inf - inf arises.
    quantiles = lower * (1 - (position - below)) + upper * (position - below)
    return torch.where(count > 0, quantiles, torch.zeros_like(quantiles))

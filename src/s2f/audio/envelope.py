"""The spectrum's envelope without its harmonics: what the vocal tract does to a voice, not its pitch.

A voiced frame's log spectrum is the vocal tract's smooth envelope (formants, tilt) plus the ripple of
the glottal source's harmonics. Their periods in the cepstrum lie apart: the envelope below about
1.5 ms of quefrency, the pitch period at 2.4 ms (420 Hz) and beyond. Keeping only the low quefrencies
(liftering) gives the envelope alone, so an encoder that reads it cannot learn pitch from the
harmonics' pattern of its training voices; it must take pitch from elsewhere
(:class:`s2f.encoders.pitch.PitchStatistics`), which reads recorded speech the same way.

Example:
    >>> import torch
    >>> from s2f.audio.spectrogram import SpectrogramFrontend
    >>> spec = SpectrogramFrontend()(torch.randn(1, 16_000))
    >>> spectral_envelope(spec).shape == spec.shape
    True
"""

from __future__ import annotations

import torch

from .spectrogram import signed_power

__all__ = ["spectral_envelope"]


@torch.no_grad()
def spectral_envelope(spec: torch.Tensor, lifter: int = 24, power: float = 0.3) -> torch.Tensor:
    """Power-law complex STFT [B, 2, T, bins] -> its envelope in the same form (zero phase) [B, 2, T, bins].

    Args:
        spec: The spectrogram the model's front end makes (real and imaginary parts, each ``|x|^power``).
        lifter: Cepstral coefficients kept (24 at 16 kHz: 1.5 ms, shorter than any voice's period).
        power: The front end's compression, undone before the log and applied again after.
    """
    # |x| from the compressed parts: (|re|^p)^(2/p) + (|im|^p)^(2/p) = re^2 + im^2.
    magnitude = signed_power(spec.float().abs(), 2.0 / power).sum(1).sqrt()  # [B, T, bins]
    # A floor 100 dB under the clip's peak keeps silent bins from sending the log to -inf.
    log = torch.log(magnitude + 1e-5 * magnitude.amax(dim=(1, 2), keepdim=True) + 1e-12)
    size = 2 * (spec.shape[-1] - 1)
    keep = torch.zeros(size, device=spec.device)
    keep[:lifter] = 1.0
    keep[size - lifter + 1 :] = 1.0  # the cepstrum of a real spectrum is symmetric
    cepstrum = torch.fft.irfft(log, n=size, dim=-1)
    log_envelope = torch.fft.rfft(cepstrum * keep, n=size, dim=-1).real
    compressed = torch.exp(log_envelope * power)  # the envelope compressed as the front end compresses
    return torch.stack([compressed, torch.zeros_like(compressed)], dim=1).to(spec.dtype)

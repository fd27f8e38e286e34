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
    >>> spectral_envelope(spec, bins=129).shape
    torch.Size([1, 2, 98, 129])
"""

from __future__ import annotations

import math

import torch

__all__ = ["lifter_matrix", "spectral_envelope"]


def lifter_matrix(bins: int, lifter: int = 24, out_bins: int | None = None) -> torch.Tensor:
    """The liftering as a float32 matrix [bins, out_bins] on the CPU: ``log_spectrum @ M`` keeps the ``lifter``
    lowest quefrencies of each frame and gives its ``out_bins`` lowest bins (default: all).

    Liftering (inverse FFT, keep the low quefrencies, FFT) is linear in the log spectrum, so one matrix
    product does it and computes only the bins that are read, where two FFTs of every frame cost more
    (``benchmarks/demo_encoder_step.py``, the variant "envelope by two FFTs").
    """
    size = 2 * (bins - 1)
    with torch.device("cpu"):  # a model built on the meta device still gets the real matrix
        keep = torch.zeros(size, dtype=torch.float64)
        keep[:lifter] = 1.0
        keep[size - lifter + 1 :] = 1.0  # the cepstrum of a real spectrum is symmetric
        cepstra = torch.fft.irfft(torch.eye(bins, dtype=torch.float64), n=size, dim=-1)
        matrix = torch.fft.rfft(cepstra * keep, n=size, dim=-1).real[:, :out_bins]
    return matrix.float().contiguous()


@torch.no_grad()
def spectral_envelope(
    spec: torch.Tensor,
    lifter: int = 24,
    power: float = 0.3,
    bins: int | None = None,
    matrix: torch.Tensor | None = None,
) -> torch.Tensor:
    """Power-law complex STFT [B, 2, T, F] -> its envelope in the same form (zero phase) [B, 2, T, bins].

    Args:
        spec: The spectrogram the model's front end makes (real and imaginary parts, each ``|x|^power``).
        lifter: Cepstral coefficients kept (24 at 16 kHz: 1.5 ms, shorter than any voice's period).
        power: The front end's compression, undone in the log domain.
        bins: The envelope's lowest ``bins`` bins only (default: all ``F``); the liftering still reads the
            whole spectrum.
        matrix: :func:`lifter_matrix` ``(F, lifter, bins)`` made once by the caller (a model keeps it as a
            buffer); built here when not given.
    """
    full_bins = spec.shape[-1]
    out_bins = full_bins if bins is None else bins
    if matrix is None:
        matrix = lifter_matrix(full_bins, lifter, out_bins).to(spec.device)
    # In fp32 even under autocast, as the front end: in bf16 the matrix product would round the log spectrum
    # to three digits and move the envelope by about 1 %.
    with torch.autocast(device_type=spec.device.type, enabled=False):
        # log|x| from the compressed parts: |x|^2 = (|re|^p)^(2/p) + (|im|^p)^(2/p), taken as a logaddexp of
        # logs, which needs one log per part where powers need a log and an exp. A zero part reads as 1e-30.
        logs = torch.log(spec.float().abs().clamp_min(1e-30)) * (2.0 / power)
        log_magnitude = 0.5 * torch.logaddexp(logs[:, 0], logs[:, 1])  # [B, T, F]
        # A floor 100 dB under the clip's peak keeps silent bins from sending the log to -inf.
        peak = log_magnitude.amax(dim=(1, 2), keepdim=True)
        floor = torch.logaddexp(peak + math.log(1e-5), torch.full_like(peak, math.log(1e-12)))
        log_envelope = torch.logaddexp(log_magnitude, floor) @ matrix.float()
        compressed = torch.exp(log_envelope * power)  # the envelope compressed as the front end compresses
    return torch.stack([compressed, torch.zeros_like(compressed)], dim=1).to(spec.dtype)

"""Spectrogram out: the paper's front end, run batched on the device inside the model.

It follows the paper exactly: 16 kHz mono, an STFT with 400-sample (25 ms) periodic Hann frames
every 160 samples (10 ms), each frame zero-padded to 512 points as TensorFlow's ``tf.signal.stft``
does, and power-law compression ``sgn(x)|x|^0.3`` on the real and imaginary parts. 6 s give
598 frames x 257 bins.

Example:
    >>> import torch
    >>> frontend = SpectrogramFrontend()
    >>> frontend(torch.zeros(2, 96_000)).shape
    torch.Size([2, 2, 598, 257])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import AudioError
from .loading import SAMPLE_RATE

__all__ = ["SpectrogramFrontend", "num_frames", "signed_power"]


def num_frames(num_samples: int, win_length: int = 400, hop_length: int = 160) -> int:
    """STFT frames for ``num_samples`` without centering (6 s at 16 kHz -> 598)."""
    return 0 if num_samples < win_length else 1 + (num_samples - win_length) // hop_length


def signed_power(values: torch.Tensor, exponent: float) -> torch.Tensor:
    """``sgn(x)|x|^exponent``, the power-law compression (and, with ``1 / power``, its inverse).

    Where no gradient is wanted it is computed as ``exp(exponent * log|x|)`` given ``x``'s sign: on CPUs ``pow``
    with a fractional exponent runs element by element, while ``exp`` and ``log`` are vectorised, and the front
    end, the pitch tracker and the envelope each apply it to every bin of every frame
    (``benchmarks/demo_encoder_step.py`` times both forms). The two agree to float32 rounding (about
    2e-7 relative); where a gradient is wanted ``pow`` stays, whose derivative autograd knows.
    """
    if exponent == 1.0:
        return values
    if torch.is_grad_enabled() and values.requires_grad:
        return values.sign() * values.abs().pow(exponent)
    # In place where it can be: the front end's tensor is 10 MB a batch, and each fresh one costs page faults.
    # The sign multiplies rather than copysign, which the ONNX exporter cannot translate (prims.signbit).
    return values.abs().log_().mul_(exponent).exp_().mul_(values.sign())


class SpectrogramFrontend(nn.Module):
    """Waveforms [B, T] -> power-law compressed complex STFT [B, 2, frames, bins] (real, imaginary).

    Runs on whatever device the waveforms are on, batched, inside the training step, so nothing
    but raw audio is ever stored. Frames are cut and windowed explicitly, then zero-padded at the
    end to ``n_fft`` (TensorFlow's framing): ``torch.stft`` would center the 400-point window in
    512, which shifts the phase of every bin.

    Args:
        sample_rate: Expected sample rate of the input.
        win_length: Frame length in samples (25 ms).
        hop_length: Hop between frames in samples (10 ms).
        n_fft: FFT size; bins = n_fft // 2 + 1.
        power: Exponent of the power-law compression of the real and imaginary parts.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = 400,
        hop_length: int = 160,
        n_fft: int = 512,
        power: float = 0.3,
    ) -> None:
        super().__init__()
        if n_fft < win_length:
            raise ValueError(f"n_fft ({n_fft}) must be at least win_length ({win_length})")
        self.sample_rate = sample_rate
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.power = power
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        return num_frames(num_samples, self.win_length, self.hop_length)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim == 1:
            wave = wave.unsqueeze(0)
        if wave.shape[-1] < self.win_length:
            raise AudioError(f"clip of {wave.shape[-1]} samples is shorter than one STFT frame ({self.win_length})")
        # The STFT runs in fp32 even under autocast: |x|^0.3 amplifies rounding of small values.
        with torch.autocast(device_type=wave.device.type, enabled=False):
            frames = wave.float().unfold(-1, self.win_length, self.hop_length) * self.window
            spectrum = torch.fft.rfft(frames, n=self.n_fft)
            parts = torch.stack((spectrum.real, spectrum.imag), dim=1)
            return signed_power(parts, self.power)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, win_length={self.win_length}, hop_length={self.hop_length}, "
            f"n_fft={self.n_fft}, power={self.power}"
        )

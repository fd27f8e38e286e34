"""A conformer voice encoder (Gulati et al., Interspeech 2020) over the paper's complex spectrogram.

Two stride-2 convolutions subsample the 2-channel spectrogram 4x in time and frequency (10 ms
frames become 40 ms; 257 bins become 63), a linear layer projects each frame's channels x bins to
``d_model``, and torchaudio's conformer blocks (feed-forward, self-attention, depthwise
convolution, feed-forward) model the sequence. Pooling over time gives one vector per clip,
which a head maps to the teacher's embedding, as the paper's CNN does with its FC layers.

torchaudio's blocks add no positional encoding: the depthwise convolution in every block gives
them relative position, and an utterance-level embedding needs little more. Every clip in an
s2f batch has the same length (clips are cropped or loop-repeated to one duration, as in the
paper), so all frames are valid and the lengths passed to the blocks are the full sequence.

Example:
    >>> import torch
    >>> encoder = ConformerEncoder(d_model=16, num_layers=1, num_heads=2, ffn_dim=32, subsampling_channels=4,
    ...                            hidden_dim=None, embed_dim=8)
    >>> encoder(torch.randn(2, 2, 298, 257)).shape
    torch.Size([2, 8])
    >>> encoder.output_frames(598), encoder.min_frames
    (148, 7)
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
from torchaudio.models import Conformer

from ..audio.envelope import lifter_matrix, spectral_envelope
from .pitch import PitchStatistics
from .voice_encoder import ENCODERS, VoiceEncoder

__all__ = ["ConformerEncoder", "s2f_conformer", "s2f_conformer_tiny"]

_KERNEL, _STRIDE = 3, 2


def _subsampled(size: int, strides: tuple[int, int] = (_STRIDE, _STRIDE)) -> int:
    """Length of one axis after the two unpadded 3x3 convolutions with these strides."""
    for stride in strides:
        size = (size - _KERNEL) // stride + 1
    return size


def _frequency_strides(frequency_subsampling: int) -> tuple[int, int]:
    strides = {4: (2, 2), 2: (1, 2), 1: (1, 1)}
    if frequency_subsampling not in strides:
        raise ValueError(f"frequency_subsampling must be 1, 2 or 4, got {frequency_subsampling}")
    return strides[frequency_subsampling]


class ConvSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions with ReLU, then each frame's channels x bins projected to ``d_model``.

    Args:
        num_bins: Frequency bins of the input spectrogram.
        channels: Output channels of both convolutions.
        d_model: Width of the frame vectors it produces.
        dropout: Dropout on the projected frames.
        frequency_subsampling: How much the two convolutions shrink the frequency axis: 4 (both
            stride 2), 2 (only the second) or 1 (neither). Time is always subsampled 4x.
    """

    def __init__(
        self, num_bins: int, channels: int, d_model: int, dropout: float, frequency_subsampling: int = 4
    ) -> None:
        super().__init__()
        first, second = _frequency_strides(frequency_subsampling)
        self.convs = nn.Sequential(
            nn.Conv2d(2, channels, _KERNEL, stride=(_STRIDE, first)),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, _KERNEL, stride=(_STRIDE, second)),
            nn.ReLU(inplace=True),
        ).to(memory_format=torch.channels_last)
        self.proj = nn.Linear(channels * _subsampled(num_bins, (first, second)), d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, 2, T, F] -> [B, T', d_model]."""
        # With 2 input and few output channels, oneDNN's convolutions are 3-4x faster channels-last
        # than in NCHW (forward and backward, fp32 and bf16), and the layout costs one copy.
        features = self.convs(spec.contiguous(memory_format=torch.channels_last))  # [B, C, T', F']
        batch, channels, frames, bins = features.shape
        # reshape, not view: under channels-last the permuted tensor is not contiguous.
        frames_first = features.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins)
        return self.dropout(self.proj(frames_first))


class AttentivePooling(nn.Module):
    """A learned softmax weighting of frames: the clip vector is their weighted mean.

    Args:
        d_model: Width of the frame vectors.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, D]."""
        weights = torch.softmax(self.score(frames).float(), dim=1).to(frames.dtype)
        return (weights * frames).sum(dim=1)


class ConformerEncoder(VoiceEncoder):
    """Conformer voice encoder: convolutional subsampling, conformer blocks, time pooling, head.

    Args:
        d_model: Width of the conformer blocks.
        num_layers: Conformer blocks.
        num_heads: Attention heads per block; must divide ``d_model``.
        ffn_dim: Hidden width of the blocks' feed-forward modules.
        conv_kernel_size: Kernel of the blocks' depthwise convolution over time (odd).
        subsampling_channels: Channels of the two subsampling convolutions.
        dropout: Dropout inside the blocks and on the subsampled frames.
        pooling: ``"mean"`` over time, or ``"attentive"`` (a learned weighting of frames).
        hidden_dim: Width of a ReLU hidden layer in the head, as in the paper's FC 4096 -> FC 4096;
            ``None`` projects the pooled vector straight to ``embed_dim``.
        embed_dim: Size of the output embedding; must match the teacher's.
        num_bins: Frequency bins of the input spectrogram (n_fft // 2 + 1).
        frequency_subsampling: How much the subsampling convolutions shrink the frequency axis (4, 2
            or 1). At 4, 31 Hz bins become 125 Hz ones, coarser than the harmonics of most voices
            (f0 of 85-255 Hz), so pitch must be read from the harmonics' pattern; 2 keeps them apart.
        band_limit_hz: Frequencies above this are zeroed before the first layer, so the encoder hears
            what a telephone line carries (up to 3.4-4 kHz) and nothing a wideband recording adds:
            an 8 kHz recording and a 16 kHz one of the same voice then look alike. ``None`` hears all.
        crop_to_band: With ``band_limit_hz``, the subsampling convolutions read only the band's bins
            instead of the whole spectrum with the rest zeroed: the same input, half the bins at a
            4 kHz band (the demo encoder's whole training step 1.18x faster,
            ``benchmarks/demo_encoder_step.py``), and a smaller projection (it reads fewer bins), so a
            model trained either way loads only that way.
        pitch_statistics: Give the head the clip's pitch as a pitch tracker reads it
            (:class:`~s2f.encoders.pitch.PitchStatistics`: median log-f0, its spread, voiced fraction)
            beside the pooled frames. The frames' own reading of pitch is learned from the training
            voices' harmonics and need not carry over to recorded speech; the tracker's does.
        envelope_only: The blocks see the spectrum's envelope (:func:`s2f.audio.envelope.spectral_envelope`:
            formants and tilt, no harmonics), so they cannot read pitch at all; use it with
            ``pitch_statistics``, which then is the encoder's only pitch.
    """

    def __init__(
        self,
        d_model: int = 256,
        num_layers: int = 12,
        num_heads: int = 4,
        ffn_dim: int = 1024,
        conv_kernel_size: int = 31,
        subsampling_channels: int = 128,
        dropout: float = 0.1,
        pooling: Literal["mean", "attentive"] = "mean",
        hidden_dim: int | None = 4096,
        embed_dim: int = 4096,
        num_bins: int = 257,
        frequency_subsampling: int = 4,
        band_limit_hz: float | None = None,
        pitch_statistics: bool = False,
        envelope_only: bool = False,
        crop_to_band: bool = False,
    ) -> None:
        super().__init__()
        if num_bins != self.n_fft // 2 + 1:
            raise ValueError(f"num_bins={num_bins} does not match the {self.n_fft}-point STFT ({self.n_fft // 2 + 1})")
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
        if conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd, got {conv_kernel_size}")
        if pooling not in ("mean", "attentive"):
            raise ValueError(f"pooling must be 'mean' or 'attentive', got {pooling!r}")
        if _subsampled(num_bins) < 1:
            raise ValueError(f"{num_bins} frequency bins are too few for 4x subsampling")
        self.embed_dim = embed_dim
        self.num_bins = num_bins
        if crop_to_band and band_limit_hz is None:
            raise ValueError("crop_to_band needs a band_limit_hz")
        self.band: torch.Tensor | None
        self.band_bins: int | None = None  # the bins the subsampling reads, where it reads only the band's
        if band_limit_hz is None:
            self.band = None
        else:
            hertz = torch.arange(num_bins) * (self.sample_rate / self.n_fft)
            self.register_buffer("band", (hertz <= band_limit_hz).float(), persistent=False)
            if crop_to_band:
                # Counted, not summed from ``hertz``: the model may be built on the meta device.
                self.band_bins = min(num_bins, math.floor(band_limit_hz * self.n_fft / self.sample_rate) + 1)
                if _subsampled(self.band_bins) < 1:
                    raise ValueError(f"band_limit_hz={band_limit_hz} keeps too few bins to subsample")
        self.subsampling = ConvSubsampling(
            self.band_bins or num_bins, subsampling_channels, d_model, dropout, frequency_subsampling
        )
        self.conformer = Conformer(
            input_dim=d_model,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            depthwise_conv_kernel_size=conv_kernel_size,
            dropout=dropout,
        )
        self.pool = AttentivePooling(d_model) if pooling == "attentive" else None
        framing = {"n_fft": self.n_fft, "win_length": self.win_length, "hop_length": self.hop_length}
        self.pitch = (
            PitchStatistics(sample_rate=self.sample_rate, power=self.power, **framing) if pitch_statistics else None
        )
        self.envelope_only = envelope_only
        self.lifter: torch.Tensor | None
        # The envelope's liftering as a matrix, made once: a constant of the graph for exports too.
        self.register_buffer(
            "lifter", lifter_matrix(num_bins, out_bins=self.band_bins) if envelope_only else None, persistent=False
        )
        pooled_dim = d_model + (PitchStatistics.num_features if pitch_statistics else 0)
        head: list[nn.Module] = (
            [nn.Linear(pooled_dim, embed_dim)]
            if hidden_dim is None
            else [nn.Linear(pooled_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, embed_dim)]
        )
        self.head = nn.Sequential(*head)
        self.min_frames = next(t for t in range(1, 64) if self.output_frames(t) >= 1)

    def output_frames(self, frames: int) -> int:
        """Conformer time steps for an input of ``frames`` spectrogram frames."""
        return _subsampled(frames)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        self.check_spectrogram(spec)
        pitch = self.pitch(spec) if self.pitch is not None else None
        if self.envelope_only:
            # The liftering reads every bin; only the band's are computed where only they are read.
            spec = spectral_envelope(spec, power=self.power, bins=self.band_bins, matrix=self.lifter)
        if self.band_bins is not None:
            spec = spec[..., : self.band_bins]
        elif self.band is not None:
            spec = spec * self.band
        frames = self.subsampling(spec)
        lengths = torch.full((frames.shape[0],), frames.shape[1], dtype=torch.long, device=frames.device)
        frames, _ = self.conformer(frames, lengths)
        pooled = frames.mean(dim=1) if self.pool is None else self.pool(frames)
        if pitch is not None:
            pooled = torch.cat([pooled, pitch.to(pooled.dtype)], dim=1)
        return self.head(pooled)


@ENCODERS.register("s2f_conformer")
def s2f_conformer(**overrides: object) -> ConformerEncoder:
    """Conformer, 12 blocks of width 256 over 40 ms frames, FC 4096 -> 4096 head (38.3 M parameters)."""
    return ConformerEncoder(**overrides)  # type: ignore[arg-type]


@ENCODERS.register("s2f_conformer_tiny")
def s2f_conformer_tiny(**overrides: object) -> ConformerEncoder:
    """Two conformer blocks of width 32 and a 64-D embedding, for tests and CPU demos."""
    config: dict[str, object] = {
        "d_model": 32,
        "num_layers": 2,
        "num_heads": 2,
        "ffn_dim": 64,
        "conv_kernel_size": 15,
        "subsampling_channels": 8,
        "dropout": 0.0,
        "hidden_dim": 64,
        "embed_dim": 64,
    }
    return ConformerEncoder(**{**config, **overrides})  # type: ignore[arg-type]

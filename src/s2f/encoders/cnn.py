"""The voice encoder of Speech2Face (Oh et al., CVPR 2019).

Conv -> ReLU -> BatchNorm blocks with 4x4 kernels; max-pooling over time only, so frequency
resolution survives until two stride-2 convolutions halve it; average pooling over time; then
ReLU -> BatchNorm -> FC 4096 -> ReLU -> FC to the face embedding. With 257 frequency bins the
last convolution keeps 64 of them, which gives the paper's 163 M parameters. The head runs outside
autocast, in the weights' dtype: under bf16 autocast only the convolutions run in bf16.

Stride-1 convolutions pad like TensorFlow's ``same`` (one row before, two after) with an
explicit pad followed by an unpadded convolution: that measured 24-30 % faster in bf16 on the
CPU than ``padding="same"``. Stride-2 convolutions pad one on each side and halve (257 -> 128 -> 64).

Example:
    >>> import torch
    >>> encoder = PaperCNNEncoder(channels=(4, 4, 8, 8, 8, 8, 8, 8, 8), hidden_dim=16, embed_dim=8)
    >>> encoder(torch.randn(2, 2, 298, 257)).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .voice_encoder import ENCODERS, VoiceEncoder

__all__ = ["PaperCNNEncoder", "s2f_cnn", "s2f_cnn_tiny"]

PAPER_CHANNELS = (64, 64, 128, 128, 128, 256, 512, 512, 512)
PAPER_POOL_AFTER = (2, 3, 4, 5)
PAPER_STRIDED = (7, 8)


class ConvBlock(nn.Sequential):
    """Explicit pad, unpadded convolution, then ReLU and BatchNorm (the paper's order) unless ``last``."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, last: bool) -> None:
        if stride == 1:
            before, after = (kernel_size - 1) // 2, kernel_size // 2  # TensorFlow's "same"
        else:
            before = after = (kernel_size - stride) // 2
        layers: list[nn.Module] = [
            nn.ZeroPad2d((before, after, before, after)),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride),
        ]
        if not last:
            layers += [nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels)]
        super().__init__(*layers)
        self.pad = before + after
        self.kernel_size = kernel_size
        self.stride = stride

    def output_size(self, size: int) -> int:
        return (size + self.pad - self.kernel_size) // self.stride + 1


class PaperCNNEncoder(VoiceEncoder):
    """The paper's CNN voice encoder, with every size an argument.

    Args:
        channels: Output channels of each convolution, in order.
        pool_after: Indices of the convolutions followed by 2x1 max-pooling over time.
        strided: Indices of the convolutions with stride 2 (time and frequency).
        hidden_dim: Width of the first fully connected layer.
        embed_dim: Size of the output embedding; must match the teacher's.
        num_bins: Frequency bins of the input spectrogram (n_fft // 2 + 1).
        kernel_size: Square kernel of every convolution.
    """

    def __init__(
        self,
        channels: Sequence[int] = PAPER_CHANNELS,
        pool_after: Sequence[int] = PAPER_POOL_AFTER,
        strided: Sequence[int] = PAPER_STRIDED,
        hidden_dim: int = 4096,
        embed_dim: int = 4096,
        num_bins: int = 257,
        kernel_size: int = 4,
    ) -> None:
        super().__init__()
        if num_bins != self.n_fft // 2 + 1:
            raise ValueError(f"num_bins={num_bins} does not match the {self.n_fft}-point STFT ({self.n_fft // 2 + 1})")
        self.embed_dim = embed_dim
        self.num_bins = num_bins
        layers: list[nn.Module] = []
        in_channels, bins = 2, num_bins
        self._time_ops: list[ConvBlock | nn.MaxPool2d] = []
        for index, out_channels in enumerate(channels):
            block = ConvBlock(
                in_channels,
                out_channels,
                kernel_size=kernel_size,
                stride=2 if index in strided else 1,
                last=index == len(channels) - 1,
            )
            layers.append(block)
            self._time_ops.append(block)
            bins = block.output_size(bins)
            if index in pool_after:
                pool = nn.MaxPool2d(kernel_size=(2, 1))
                layers.append(pool)
                self._time_ops.append(pool)
            in_channels = out_channels
        if bins < 1:
            raise ValueError(f"{num_bins} frequency bins shrink to nothing through {len(channels)} convolutions")
        self.features = nn.Sequential(*layers)
        self.out_bins = bins
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.BatchNorm1d(in_channels),
            nn.Flatten(),
            nn.Linear(in_channels * bins, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, embed_dim),
        )
        self.min_frames = self._min_frames()

    def output_frames(self, frames: int) -> int:
        """Time steps left after the convolutions and pools for an input of ``frames`` frames."""
        for op in self._time_ops:
            frames = op.output_size(frames) if isinstance(op, ConvBlock) else frames // 2
        return frames

    def _min_frames(self) -> int:
        frames = 1
        while self.output_frames(frames) < 1:
            frames += 1
        return frames

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        self.check_spectrogram(spec)
        features = self.features(spec).mean(dim=2)
        # The head runs in the weights' own dtype even under autocast: with a few clips per batch its
        # matmuls are tiny (about 0.15 % of the FLOPs), but autocast would cast the first FC's 134 M
        # fp32 weights to bf16 and their gradient back on every step (measured 1.6x slower on the CPU).
        with torch.autocast(features.device.type, enabled=False):
            return self.head(features.to(self.head[3].weight.dtype))


@ENCODERS.register("s2f_cnn")
def s2f_cnn(**overrides: object) -> PaperCNNEncoder:
    """The paper's voice encoder: 9 convolutions, FC 4096 -> 4096 (163 M parameters)."""
    return PaperCNNEncoder(**overrides)  # type: ignore[arg-type]


@ENCODERS.register("s2f_cnn_tiny")
def s2f_cnn_tiny(**overrides: object) -> PaperCNNEncoder:
    """The paper's layout with 8-32 channels and a 64-D embedding, for tests and CPU demos."""
    config: dict[str, object] = {"channels": (8, 8, 16, 16, 16, 32, 32, 32, 32), "hidden_dim": 64, "embed_dim": 64}
    return PaperCNNEncoder(**{**config, **overrides})  # type: ignore[arg-type]

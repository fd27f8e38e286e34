"""Voice encoders on timm backbones: any convolutional timm model becomes a spectrogram encoder.

The backbone is built by name with ``pretrained=False`` and ``in_chans=2`` (the real and
imaginary planes of the compressed STFT) as a timm feature extractor that ends at its last
stage, so no classifier or head parameters sit unused (which would break DDP). Its feature map
[B, C, T', F'] is averaged over time only, and the head sees every frequency band, as in the
paper's CNN. The reason is the one the paper's design follows: speech is stationary in time, so
*when* a sound happens says nothing about the speaker, but a spectrogram is not shift-invariant
in frequency: energy at 300 Hz (a low pitch, a long vocal tract) and at 3 kHz mean different
things, and a convolution's response alone does not tell them apart. Backbones downsample 32x,
so 257 bins leave 9 bands of about 900 Hz, coarse but still ordered from low to high. Pooling
over both axes (``pool="time_freq"``) keeps only what the channels encode, and makes the head
independent of the number of bins.

timm is needed only to build these encoders (``pip install 's2f[train]'``); importing s2f
does not import it.

Example:
    >>> import torch
    >>> encoder = TimmVoiceEncoder("test_resnet", embed_dim=8, hidden_dim=None)
    >>> encoder(torch.randn(2, 2, 298, 257)).shape
    torch.Size([2, 8])
    >>> encoder.feature_shape  # channels and frequency bands the head sees
    (96, 9)
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn as nn

from ..errors import ConfigError
from .voice_encoder import ENCODERS, VoiceEncoder

__all__ = [
    "TimmVoiceEncoder",
    "s2f_efficientnet_b0",
    "s2f_efficientnet_b0_tiny",
    "s2f_resnet18",
    "s2f_resnet18_tiny",
]

# Frames of the dry run that sizes the head: 1.3 s, shorter than any clip s2f trains on.
_PROBE_FRAMES = 128


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError("timm-backbone encoders need timm: pip install 's2f[train]' (or pip install timm)") from None
    return timm


class TimmVoiceEncoder(VoiceEncoder):
    """A timm backbone over the 2-channel spectrogram, time pooling, and the paper's kind of head.

    Args:
        model_name: Any timm model that works as a feature extractor (``features_only``) on
            inputs of any size: ResNets, EfficientNets, RegNets, ConvNeXts, MobileNets... Vision
            transformers with fixed patch grids are not suitable.
        embed_dim: Size of the output embedding; must match the teacher's.
        hidden_dim: Width of a ReLU hidden layer in the head (the paper: 4096); ``None`` projects
            the pooled features straight to ``embed_dim``.
        pool: ``"time"`` averages over time and keeps the frequency bands; ``"time_freq"`` averages both.
        model_kwargs: More keyword arguments for ``timm.create_model`` (``drop_path_rate``, ...).
        num_bins: Frequency bins of the input spectrogram (n_fft // 2 + 1).
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        embed_dim: int = 4096,
        hidden_dim: int | None = 4096,
        pool: Literal["time", "time_freq"] = "time",
        model_kwargs: dict[str, Any] | None = None,
        num_bins: int = 257,
    ) -> None:
        super().__init__()
        if num_bins != self.n_fft // 2 + 1:
            raise ValueError(f"num_bins={num_bins} does not match the {self.n_fft}-point STFT ({self.n_fft // 2 + 1})")
        if pool not in ("time", "time_freq"):
            raise ValueError(f"pool must be 'time' or 'time_freq', got {pool!r}")
        timm = _import_timm()
        self.embed_dim = embed_dim
        self.num_bins = num_bins
        self.model_name = model_name
        self.pool = pool
        try:
            self.backbone = timm.create_model(
                model_name, pretrained=False, in_chans=2, features_only=True, out_indices=(-1,), **(model_kwargs or {})
            )
        except RuntimeError as exc:  # unknown names and models without a feature extractor
            raise ConfigError(f"timm cannot build {model_name!r} as a feature extractor: {exc}") from None
        # timm's Format is a str enum: compare it, do not str() it (that gives "Format.NHWC").
        self._channels_last_output = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"
        channels, bands = self._probe()
        self.feature_shape = (channels, bands)
        width = channels * (bands if pool == "time" else 1)
        head: list[nn.Module] = [nn.BatchNorm1d(channels), nn.Flatten()]
        head += (
            [nn.Linear(width, embed_dim)]
            if hidden_dim is None
            else [nn.Linear(width, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, embed_dim)]
        )
        self.head = nn.Sequential(*head)

    def _probe(self) -> tuple[int, int]:
        """Channels and frequency bands of the backbone's output, from a dry run in eval mode.

        Eval mode keeps the dry run out of the batch-norm statistics; under ``torch.device("meta")``
        the probe is a meta tensor too, so counting parameters that way costs nothing.
        """
        was_training = self.backbone.training
        self.backbone.eval()
        probe = torch.zeros(1, 2, _PROBE_FRAMES, self.num_bins)
        try:
            with torch.no_grad():
                features = self.features(probe)
        except Exception as exc:  # timm raises assertion and shape errors of every kind here
            raise ConfigError(
                f"timm model {self.model_name!r} cannot take a spectrogram {tuple(probe.shape)}: "
                f"{type(exc).__name__}: {exc}; use a convolutional backbone (resnet*, efficientnet*, convnext*, ...)"
            ) from None
        finally:
            self.backbone.train(was_training)
        return features.shape[1], features.shape[3]

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map [B, C, T', F'] of a spectrogram [B, 2, T, F]."""
        (features,) = self.backbone(spec)
        return features.permute(0, 3, 1, 2) if self._channels_last_output else features

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        self.check_spectrogram(spec)
        features = self.features(spec)
        pooled = features.mean(dim=2) if self.pool == "time" else features.mean(dim=(2, 3)).unsqueeze(-1)
        return self.head(pooled)


@ENCODERS.register("s2f_resnet18")
def s2f_resnet18(**overrides: object) -> TimmVoiceEncoder:
    """timm ResNet-18 on the spectrogram, 9 frequency bands into FC 4096 -> 4096 (46.8 M parameters)."""
    return TimmVoiceEncoder(**{"model_name": "resnet18", **overrides})  # type: ignore[arg-type]


@ENCODERS.register("s2f_resnet18_tiny")
def s2f_resnet18_tiny(**overrides: object) -> TimmVoiceEncoder:
    """timm's tiny test ResNet (one block per stage, 16-96 channels) and a 64-D embedding."""
    config: dict[str, object] = {"model_name": "test_resnet", "hidden_dim": 64, "embed_dim": 64}
    return TimmVoiceEncoder(**{**config, **overrides})  # type: ignore[arg-type]


@ENCODERS.register("s2f_efficientnet_b0")
def s2f_efficientnet_b0(**overrides: object) -> TimmVoiceEncoder:
    """timm EfficientNet-B0 on the spectrogram, 9 frequency bands into FC 4096 -> 4096 (32.2 M parameters)."""
    return TimmVoiceEncoder(**{"model_name": "efficientnet_b0", **overrides})  # type: ignore[arg-type]


@ENCODERS.register("s2f_efficientnet_b0_tiny")
def s2f_efficientnet_b0_tiny(**overrides: object) -> TimmVoiceEncoder:
    """timm's tiny test EfficientNet (8-64 channels) and a 64-D embedding."""
    config: dict[str, object] = {"model_name": "test_efficientnet", "hidden_dim": 64, "embed_dim": 64}
    return TimmVoiceEncoder(**{**config, **overrides})  # type: ignore[arg-type]

"""The contract every voice encoder follows."""

from __future__ import annotations

import torch
import torch.nn as nn

from .._registry import Registry
from ..config.components import RecordsConfig

__all__ = ["ENCODERS", "VoiceEncoder"]


class VoiceEncoder(RecordsConfig, nn.Module):
    """Base class of voice encoders: spectrogram [B, 2, T, F] -> face embedding [B, embed_dim].

    Subclasses set ``embed_dim`` and the front-end settings they expect (``sample_rate``,
    ``n_fft``, ``win_length``, ``hop_length``, ``power``) and accept any number of frames T,
    so that 3 s and 6 s clips both run. Their constructor arguments are recorded, so a trained
    encoder can be saved and rebuilt by :class:`s2f.Speech2Face`.
    """

    embed_dim: int
    num_bins: int = 257
    min_frames: int = 1
    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    power: float = 0.3

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_spectrogram(self, spec: torch.Tensor) -> None:
        """Raises a one-line ``ValueError`` unless ``spec`` is [B, 2, T >= min_frames, num_bins]."""
        if spec.ndim != 4 or spec.shape[1] != 2 or spec.shape[-1] != self.num_bins:
            raise ValueError(f"expected a spectrogram [B, 2, T, {self.num_bins}], got {tuple(spec.shape)}")
        if spec.shape[2] < self.min_frames:
            raise ValueError(
                f"{spec.shape[2]} frames is too short for this encoder: it needs at least {self.min_frames} "
                f"({(self.min_frames - 1) * self.hop_length + self.win_length} samples)"
            )

    def output_layer(self) -> nn.Linear:
        """The linear layer that produces the embedding: the last ``nn.Linear`` with ``embed_dim`` outputs.

        Raises:
            ValueError: The encoder ends in something else; override this method.
        """
        for module in reversed(list(self.modules())):
            if isinstance(module, nn.Linear) and module.out_features == self.embed_dim:
                return module
        raise ValueError(f"{type(self).__name__} has no nn.Linear with {self.embed_dim} outputs; override output_layer")

    @torch.no_grad()
    def start_from(self, mean_embedding: torch.Tensor) -> None:
        """Sets the output layer's bias to ``mean_embedding``, so training starts at the average face.

        Face embeddings of a teacher usually fill a narrow cone (dlib's: about 20 degrees around
        their mean), while a fresh encoder points anywhere; starting at the mean spends no steps on
        finding the cone and leaves the training to the differences between faces.
        """
        layer = self.output_layer()
        if layer.bias is None:
            raise ValueError(f"{type(self).__name__}'s output layer has no bias to start from")
        layer.bias.copy_(mean_embedding.to(layer.bias))

    def frontend_config(self) -> dict[str, float]:
        """The spectrogram settings this encoder was built for."""
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "power": self.power,
        }


# Every encoder registers here, where it is defined (``@ENCODERS.register``); plug-ins through the entry-point
# group s2f.encoders. It lives beside the base class, so the registry module below the families never imports them.
ENCODERS: Registry[VoiceEncoder] = Registry("encoder", "s2f.encoders")

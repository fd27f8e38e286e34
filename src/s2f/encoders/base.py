"""The contract every voice encoder follows."""

from __future__ import annotations

import torch
import torch.nn as nn

from .._config import RecordsConfig

__all__ = ["VoiceEncoder"]


class VoiceEncoder(RecordsConfig, nn.Module):
    """Base class of voice encoders: spectrogram [B, 2, T, F] -> face embedding [B, embed_dim].

    Subclasses set ``embed_dim`` and the front-end settings they expect (``sample_rate``,
    ``n_fft``, ``win_length``, ``hop_length``, ``power``) and accept any number of frames T,
    so that 3 s and 6 s clips both run. Their constructor arguments are recorded, so a trained
    encoder can be saved and rebuilt by :class:`s2f.Speech2Face`.
    """

    embed_dim: int
    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    power: float = 0.3

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def frontend_config(self) -> dict[str, float]:
        """The spectrogram settings this encoder was built for."""
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "power": self.power,
        }

"""Voice encoders: spectrogram [B, 2, T, F] -> face embedding [B, D]. Importing registers them."""

from .base import VoiceEncoder
from .cnn import PaperCNNEncoder

__all__ = ["PaperCNNEncoder", "VoiceEncoder"]

"""Voice encoders: spectrogram [B, 2, T, F] -> face embedding [B, D]. Importing registers them."""

from .cnn import PaperCNNEncoder
from .conformer import ConformerEncoder
from .timm_backbone import TimmVoiceEncoder
from .voice_encoder import VoiceEncoder

__all__ = ["ConformerEncoder", "PaperCNNEncoder", "TimmVoiceEncoder", "VoiceEncoder"]

"""Voice encoders: spectrogram [B, 2, T, F] -> face embedding [B, D]. Importing registers them."""

from .cnn import PaperCNNEncoder
from .conformer import ConformerEncoder
from .speaker_frontend import SpeakerFrontendEncoder
from .timm_backbone import TimmVoiceEncoder
from .voice_encoder import ENCODERS, VoiceEncoder

__all__ = [
    "ENCODERS",
    "ConformerEncoder",
    "PaperCNNEncoder",
    "SpeakerFrontendEncoder",
    "TimmVoiceEncoder",
    "VoiceEncoder",
]

"""Lightning training systems. The only place (with the CLI) where s2f imports Lightning."""

from .callbacks import EmbeddingWriter
from .decoder_system import FaceDecoderSystem
from .system import Speech2FaceSystem

__all__ = ["EmbeddingWriter", "FaceDecoderSystem", "Speech2FaceSystem"]

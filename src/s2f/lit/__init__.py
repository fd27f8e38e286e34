"""Lightning training systems. The only place (with the CLI) where s2f imports Lightning."""

from .callbacks import EmbeddingWriter
from .system import Speech2FaceSystem

__all__ = ["EmbeddingWriter", "Speech2FaceSystem"]

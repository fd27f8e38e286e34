"""Training with Lightning: the systems, the datamodule that streams shards, callbacks and the Lightning CLI.

Model code (encoders, teachers, decoders) is plain PyTorch; Lightning enters here, in the prepare
engine (a ``predict`` loop over videos) and in the demo. ``S2FDataModule`` is imported from :mod:`s2f.data`
(``s2f.train.S2FDataModule`` still answers, with a DeprecationWarning: :mod:`s2f._compat.moved`).
"""

from typing import Any

from .._compat.moved import moved_name
from .callbacks import EmbeddingWriter
from .decoder_system import FaceDecoderSystem
from .system import Speech2FaceSystem

__all__ = ["EmbeddingWriter", "FaceDecoderSystem", "Speech2FaceSystem"]


def __getattr__(name: str) -> Any:
    return moved_name(__name__, name)

"""Training with Lightning: the systems, the datamodule that streams shards, callbacks and the Lightning CLI.

Model code (encoders, teachers, decoders) is plain PyTorch; Lightning enters here, in the prepare
engine (a ``predict`` loop over videos) and in the demo. ``S2FDataModule`` is exported here as well as
from :mod:`s2f.data`.
"""

from .callbacks import EmbeddingWriter
from .datamodule import S2FDataModule
from .decoder_system import FaceDecoderSystem
from .system import Speech2FaceSystem

__all__ = ["EmbeddingWriter", "FaceDecoderSystem", "S2FDataModule", "Speech2FaceSystem"]

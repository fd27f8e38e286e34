"""The contract every face decoder follows."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from ..config.components import RecordsConfig

__all__ = ["FaceDecoder", "FaceOutput"]


class FaceOutput(NamedTuple):
    """What a decoder renders: ``image`` [B, 3, H, W] in [0, 1], ``landmarks`` [B, K, 2], ``texture``."""

    image: torch.Tensor
    landmarks: torch.Tensor
    texture: torch.Tensor


class FaceDecoder(RecordsConfig, nn.Module):
    """Base class of face decoders: embedding [B, embed_dim] -> :class:`FaceOutput`.

    ``first_layer`` is the decoder's first layer on the embedding; the paper's L1 loss term
    compares the voice and face embeddings through it, frozen.
    """

    embed_dim: int
    image_size: int

    @property
    def first_layer(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, embedding: torch.Tensor) -> FaceOutput:  # pragma: no cover - abstract
        raise NotImplementedError

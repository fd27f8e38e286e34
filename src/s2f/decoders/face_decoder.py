"""The contract every face decoder follows."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from .._registry import Registry
from ..config.components import RecordsConfig

__all__ = ["DECODERS", "FaceDecoder", "FaceOutput"]


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


# Every decoder registers here, where it is defined (``@DECODERS.register``); plug-ins through the entry-point
# group s2f.decoders. It lives beside the base class, so the registry module below the families never imports them.
DECODERS: Registry[FaceDecoder] = Registry("decoder", "s2f.decoders")

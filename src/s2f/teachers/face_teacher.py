"""The contract every frozen face teacher follows."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._registry import Registry
from ..config.components import RecordsConfig

__all__ = ["TEACHERS", "FaceTeacher"]


class FaceTeacher(RecordsConfig, nn.Module):
    """Base class of frozen face-embedding networks, the targets the voice encoder learns to hit.

    A teacher maps face crops in its own normalisation [B, 3, image_size, image_size] to
    embeddings [B, embed_dim]; :meth:`embed_images` takes plain uint8 RGB crops of any size.
    Teachers with a classifier on top of the embedding (VGG-Face's fc8) expose it as
    :meth:`classify`, which the distillation loss uses.

    Frozen means: no parameter takes gradients, the module stays in eval mode even when the
    system around it trains (its batch-norm statistics and dropout never change), and training
    systems leave it out of checkpoints, rebuilding it from its name and weights file instead.
    Subclasses build their layers, then call :meth:`freeze`.
    """

    name: str = "teacher"
    embed_dim: int
    image_size: int
    # Per-channel normalisation applied to RGB values on a 0-255 scale.
    pixel_mean: Sequence[float] = (0.0, 0.0, 0.0)
    pixel_std: Sequence[float] = (255.0, 255.0, 255.0)
    has_classifier: bool = False

    def freeze(self) -> FaceTeacher:
        """Stops gradients into the parameters and switches to eval mode for good."""
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FaceTeacher:
        """Ignores ``mode``: a frozen teacher always stays in eval mode."""
        return super().train(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB crops [B, 3, H, W] -> the teacher's input: resized and normalised floats."""
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images [B, 3, H, W], got {tuple(images.shape)}")
        pixels = images.float() if images.dtype == torch.uint8 else images.float() * 255.0
        if pixels.shape[-2:] != (self.image_size, self.image_size):
            pixels = F.interpolate(
                pixels, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False
            )
        mean = pixels.new_tensor(self.pixel_mean).view(1, 3, 1, 1)
        std = pixels.new_tensor(self.pixel_std).view(1, 3, 1, 1)
        return (pixels - mean) / std

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, embed_dim] of uint8 RGB face crops [B, 3, H, W] (any size)."""
        device = next(self.parameters()).device
        return self(self.preprocess(images.to(device)))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Class logits of an embedding; only teachers with ``has_classifier``."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier on its embedding")

    def forward(self, faces: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# Every teacher registers here, where it is defined (``@TEACHERS.register``); plug-ins through the entry-point
# group s2f.teachers. It lives beside the base class, so the registry module below the families never imports them.
TEACHERS: Registry[FaceTeacher] = Registry("teacher", "s2f.teachers")

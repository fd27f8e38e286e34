"""The canonical frame that landmark-and-texture decoders share: a mean shape, a mean texture and the warp.

Cole et al.'s decoder (:mod:`s2f.decoders.warp`) and the linear face model
(:mod:`s2f.decoders.linear_face`) both draw a face's texture in the frame where every face has the mean
shape, then warp it onto the face's own landmarks. :class:`CanonicalFrameDecoder` holds what that needs:
the mean landmarks and mean texture (buffers, so they travel with the weights; the training system
measures them on the training faces) and the thin-plate-spline warp, plus loading trained weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config.weights import load_into, read_state_dict
from ..errors import WeightsError
from ..vision.alignment import mean_shape
from .face_decoder import FaceDecoder
from .tps import tps_warp

__all__ = ["CanonicalFrameDecoder", "initial_shape", "load_decoder_weights"]

_WEIGHTS_FILE = "model.safetensors"


class CanonicalFrameDecoder(FaceDecoder):
    """A face decoder that draws in the mean shape's frame and warps onto predicted landmarks.

    Subclasses call :meth:`init_canonical_frame` in their constructor. ``texture_floor`` keeps the mean
    texture away from 0 and 1 where a subclass takes its logit.
    """

    mean_landmarks: torch.Tensor
    mean_texture: torch.Tensor
    num_landmarks: int
    border_points: int
    flow_size: int | None
    texture_floor: float = 0.0

    def init_canonical_frame(
        self, num_landmarks: int, image_size: int, border_points: int, flow_size: int | None
    ) -> None:
        """Sets the frame's sizes and its starting mean shape and (grey) mean texture."""
        self.num_landmarks = num_landmarks
        self.image_size = image_size
        self.border_points = border_points
        self.flow_size = flow_size
        self.register_buffer("mean_landmarks", initial_shape(num_landmarks, image_size))
        self.register_buffer("mean_texture", torch.full((3, image_size, image_size), 0.5))

    def set_mean_face(self, landmarks: torch.Tensor, texture: torch.Tensor) -> None:
        """Sets the canonical frame: mean landmarks [K, 2] in output pixels, mean canonical texture [3, S, S]."""
        with torch.no_grad():
            self.mean_landmarks.copy_(landmarks)
            self.mean_texture.copy_(texture.clamp(self.texture_floor, 1 - self.texture_floor))

    def render(self, texture: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Warps canonical textures [B, 3, S, S] from the mean shape onto landmarks [B, K, 2] (pixels)."""
        mean = self.mean_landmarks.to(landmarks.dtype).expand_as(landmarks)
        return tps_warp(texture, mean, landmarks, border_per_side=self.border_points, flow_size=self.flow_size)

    def load_weights(self, path: str | Path) -> None:
        """Fills the decoder from a trained one (see ``weights``); a mismatch is a :class:`WeightsError`."""
        load_decoder_weights(self, path)


def load_decoder_weights(decoder: FaceDecoder, path: str | Path) -> None:
    """Fills ``decoder`` from a state dict, a training checkpoint or a saved model folder; a mismatch is a
    :class:`WeightsError`."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / _WEIGHTS_FILE
    state = read_state_dict(path, "face decoder")
    # Training checkpoints and saved models hold the decoder under "decoder."; a bare state dict does not.
    prefixed = {k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")}
    if prefixed:
        state = prefixed
    elif any(k.startswith("encoder.") for k in state):
        raise WeightsError(f"{path} holds a voice encoder but no face decoder")
    load_into(decoder, state, path, f"face decoder ({type(decoder).__name__}, {decoder.embed_dim}-D in)")


def initial_shape(num_landmarks: int, image_size: int) -> torch.Tensor:
    """The starting mean shape: s2f's canonical 68 points, or a ring for another landmark count."""
    if num_landmarks == 68:
        shape = mean_shape(image_size)
    else:
        angles = np.linspace(0, 2 * np.pi, num_landmarks, endpoint=False)
        shape = (0.5 + 0.3 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)) * image_size - 0.5
    return torch.tensor(shape, dtype=torch.float32)

"""The face decoder of Cole et al. (CVPR 2017), as Speech2Face uses it: embedding -> landmarks + texture -> warp.

A face-recognition embedding barely changes with pose, light and expression, so a decoder trained
on frontal, neutral faces renders any embedding as such a face. It predicts the face's shape and
its appearance separately:

- a shared first layer (4096 -> 1000 in Speech2Face) whose output also serves the voice encoder's
  L1 loss term (:attr:`WarpDecoder.first_layer`);
- landmarks: a shallow MLP with ReLU, predicting offsets from the mean shape;
- texture: FC -> 14 x 14 x 256 -> transposed convolutions (kernel 5, stride 2, ReLU) doubling the
  side and halving the channels (never below 32) up to the output size -> 1x1 convolution to RGB.
  The texture lives in the canonical frame where every face has the mean shape;
- warp: a thin-plate spline moves the texture from the mean shape onto the predicted landmarks,
  with the image border held fixed (:func:`s2f.decoders.tps.tps_warp`).

The mean shape and the mean canonical texture are buffers, so they travel with the weights; the
training system fills them from the training faces before the first step. The texture is predicted
as a change to the mean texture (in logit space, through a zero-initialised last layer), so an
untrained decoder renders the mean face and training starts from there.

Example:
    >>> import torch
    >>> decoder = warp_decoder_tiny()
    >>> face = decoder(torch.randn(2, 64))
    >>> face.image.shape, face.landmarks.shape, face.texture.shape
    (torch.Size([2, 3, 64, 64]), torch.Size([2, 68, 2]), torch.Size([2, 3, 64, 64]))
    >>> decoder.first_layer
    Linear(in_features=64, out_features=256, bias=True)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .canonical import CanonicalFrameDecoder
from .face_decoder import DECODERS, FaceOutput
from .tps import pixels_to_unit, unit_to_pixels

__all__ = ["WarpDecoder", "warp_decoder", "warp_decoder_tiny"]


class WarpDecoder(CanonicalFrameDecoder):
    """Embedding -> landmarks (MLP) + canonical texture (CNN) -> image (thin-plate-spline warp).

    Args:
        embed_dim: Size of the input embedding (VGG-Face fc7: 4096).
        hidden_dim: Width of the shared first layer (Speech2Face: 1000).
        landmark_hidden_dim: Width of the landmark MLP's hidden layer.
        num_landmarks: Landmarks per face (dlib: 68). With 68, the mean shape starts as
            :func:`s2f.vision.alignment.mean_shape`; otherwise as a ring, until training sets it from data.
        image_size: Side of the output image; ``base_size * 2**n`` for some n.
        base_size: Side of the texture branch's first feature map (Cole et al.: 14).
        base_channels: Channels of that feature map (256); each upsampling halves them.
        min_channels: Floor of the channel halving (32).
        border_points: Fixed points per image side in the warp.
        flow_size: Resolution the warp's displacement field is computed at (then upsampled);
            the output's by default.
        weights: A trained decoder to load: a ``.safetensors`` / ``.pt`` state dict, a ``.ckpt``
            written by :class:`s2f.train.FaceDecoderSystem`, or a saved model folder. The
            architecture arguments must match the ones it was trained with.

    Example:
        >>> decoder = WarpDecoder(embed_dim=32, hidden_dim=16, landmark_hidden_dim=16, image_size=28,
        ...                       base_channels=8, min_channels=4)
        >>> decoder(torch.randn(1, 32)).image.shape
        torch.Size([1, 3, 28, 28])
    """

    texture_floor = 1e-3  # the texture is predicted around the mean texture's logit

    def __init__(
        self,
        embed_dim: int = 4096,
        hidden_dim: int = 1000,
        landmark_hidden_dim: int = 256,
        num_landmarks: int = 68,
        image_size: int = 224,
        base_size: int = 14,
        base_channels: int = 256,
        min_channels: int = 32,
        border_points: int = 4,
        flow_size: int | None = None,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        doublings = math.log2(image_size / base_size)
        if image_size % base_size or not doublings.is_integer():
            raise ValueError(f"image_size ({image_size}) must be base_size ({base_size}) times a power of 2")
        self.embed_dim = embed_dim
        self.init_canonical_frame(num_landmarks, image_size, border_points, flow_size)
        self.base_size = base_size
        self.base_channels = base_channels

        self.first = nn.Linear(embed_dim, hidden_dim)
        landmark_out = nn.Linear(landmark_hidden_dim, 2 * num_landmarks)
        self.landmark_mlp = nn.Sequential(nn.Linear(hidden_dim, landmark_hidden_dim), nn.ReLU(), landmark_out)
        self.texture_fc = nn.Linear(hidden_dim, base_channels * base_size * base_size)
        layers: list[nn.Module] = []
        channels = base_channels
        for _ in range(int(doublings)):
            out_channels = max(channels // 2, min_channels)
            layers += [nn.ConvTranspose2d(channels, out_channels, 5, stride=2, padding=2, output_padding=1), nn.ReLU()]
            channels = out_channels
        self.upsample = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(channels, 3, 1)
        # Zero-initialised heads: an untrained decoder renders the mean face, and training moves from there.
        with torch.no_grad():
            for head in (landmark_out, self.to_rgb):
                head.weight.zero_()
                if head.bias is not None:
                    head.bias.zero_()

        if weights is not None:
            self.load_weights(weights)

    @property
    def first_layer(self) -> nn.Module:
        """The layer the embedding enters (embed_dim -> hidden_dim); the paper's f_dec for the L1 loss."""
        return self.first

    def forward(self, embedding: torch.Tensor) -> FaceOutput:
        hidden = torch.relu(self.first(embedding))
        # Landmarks are predicted in [-1, 1] units so the MLP's scale does not depend on the image size.
        mean_unit = pixels_to_unit(self.mean_landmarks, self.image_size)
        offsets = self.landmark_mlp(hidden).view(-1, self.num_landmarks, 2)
        landmarks = unit_to_pixels(mean_unit + offsets, self.image_size)
        features = torch.relu(self.texture_fc(hidden)).view(-1, self.base_channels, self.base_size, self.base_size)
        mean_logit = torch.logit(self.mean_texture.to(features.dtype))
        texture = torch.sigmoid(mean_logit + self.to_rgb(self.upsample(features)))
        image = self.render(texture, landmarks).clamp(0.0, 1.0)
        return FaceOutput(image=image, landmarks=landmarks, texture=texture)


@DECODERS.register("warp_decoder")
def warp_decoder(**overrides: object) -> WarpDecoder:
    """Cole et al.'s decoder as in Speech2Face: 4096-D VGG-Face fc7 -> 1000 -> 68 landmarks + 224x224 face."""
    config: dict[str, object] = {"embed_dim": 4096, "hidden_dim": 1000, "image_size": 224, "flow_size": 56}
    return WarpDecoder(**{**config, **overrides})  # type: ignore[arg-type]


@DECODERS.register("warp_decoder_tiny")
def warp_decoder_tiny(**overrides: object) -> WarpDecoder:
    """The same at 64-D in (vggface_tiny, s2f_cnn_tiny) and 64x64 out, 8x8 -> 64x64 with 64-16 channels."""
    config: dict[str, object] = {
        "embed_dim": 64,
        "hidden_dim": 256,
        "landmark_hidden_dim": 128,
        "image_size": 64,
        "base_size": 8,
        "base_channels": 64,
        "min_channels": 16,
        "flow_size": 32,
    }
    return WarpDecoder(**{**config, **overrides})  # type: ignore[arg-type]

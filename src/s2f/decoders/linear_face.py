"""A linear face model as the decoder: embedding -> shape and texture coefficients -> warp.

Cole et al.'s decoder (:mod:`s2f.decoders.warp`) learns its texture with a CNN from scratch, which
takes far more faces and steps than a small data set or a CPU budget give it: on ``s2f demo``'s
world (642 training faces) it renders the average face for every embedding. This decoder keeps
its split into landmarks, a texture in the mean shape's frame and a thin-plate-spline warp, but
draws the texture from a *linear face model*, as morphable models do (Blanz & Vetter, SIGGRAPH
1999): the mean texture plus K basis images, and the landmarks as the mean shape plus offsets.

One linear layer maps the embedding to the landmark offsets and the K texture coefficients. Both it
and the basis are fitted in closed form before training (:meth:`LinearFaceDecoder.fit_face_model`):
the basis is the principal components of the training faces' canonical textures, each scaled by its
standard deviation; the layer is the ridge regression of each face's shape offsets and texture
coefficients on its embedding. Gradient training can then refine both (they are parameters), but the
closed form is already the least-squares decoder. Measured on the demo's world (``docs/synth.md``):
faces decoded from held-out true embeddings, re-embedded by dlib, find their own identity at rank 1
among 60 in about 95 % of clips, against about 50-60 % for the same model trained by gradient
descent alone, and the average face for Cole et al.'s CNN.

The layer is :attr:`LinearFaceDecoder.first_layer`, so the paper's L1 term compares the voice and
face embeddings through it: in units of face-model coefficients.

Example:
    >>> import torch
    >>> decoder = linear_face_decoder_tiny()
    >>> face = decoder(torch.randn(2, 64))
    >>> face.image.shape, face.landmarks.shape
    (torch.Size([2, 3, 64, 64]), torch.Size([2, 68, 2]))
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .canonical import CanonicalFrameDecoder
from .face_decoder import DECODERS, FaceOutput
from .tps import pixels_to_unit, unit_to_pixels

__all__ = ["LinearFaceDecoder", "linear_face_decoder", "linear_face_decoder_tiny", "principal_components"]


class LinearFaceDecoder(CanonicalFrameDecoder):
    """Embedding -> (landmark offsets, texture coefficients) by one linear layer -> texture -> warp.

    Args:
        embed_dim: Size of the input embedding.
        components: Basis images of the texture model.
        num_landmarks: Landmarks per face (dlib: 68).
        image_size: Side of the output image (any size).
        border_points: Fixed points per image side in the warp.
        flow_size: Resolution the warp's displacement field is computed at; the output's by default.
        ridge: Strength of the ridge penalty of :meth:`fit_face_model`, relative to the embeddings'
            mean variance per dimension times the number of faces (so it does not depend on the
            embedding's scale or size).
        weights: A trained decoder to load (as :class:`~s2f.decoders.WarpDecoder`'s ``weights``).

    Example:
        >>> decoder = LinearFaceDecoder(embed_dim=8, components=3, image_size=16)
        >>> decoder.first_layer
        Linear(in_features=8, out_features=139, bias=True)
    """

    def __init__(
        self,
        embed_dim: int = 4096,
        components: int = 64,
        num_landmarks: int = 68,
        image_size: int = 224,
        border_points: int = 4,
        flow_size: int | None = None,
        ridge: float = 0.3,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be at least 1, got {components}")
        self.embed_dim = embed_dim
        self.components = components
        self.init_canonical_frame(num_landmarks, image_size, border_points, flow_size)
        self.ridge = ridge
        self.head = nn.Linear(embed_dim, 2 * num_landmarks + components)
        with torch.no_grad():  # an unfitted decoder renders the mean face
            self.head.weight.zero_()
            self.head.bias.zero_()
        self.texture_basis = nn.Parameter(torch.zeros(components, 3 * image_size * image_size))
        if weights is not None:
            self.load_weights(weights)

    @property
    def first_layer(self) -> nn.Module:
        """The linear layer from the embedding to the face-model coefficients."""
        return self.head

    @torch.no_grad()
    def fit_face_model(self, embeddings: torch.Tensor, landmarks: torch.Tensor, textures: torch.Tensor) -> None:
        """Fits the texture basis and the linear layer in closed form on training faces.

        Args:
            embeddings: The teacher's embeddings [N, D].
            landmarks: Their landmarks [N, K, 2], in pixels of the decoder's output size.
            textures: Their canonical textures [N, 3, S, S] (warped to the mean shape), in [0, 1];
                :meth:`set_mean_face` must have set the mean shape and texture first.
        """
        device = self.head.weight.device
        flat = textures.flatten(1).to(device, torch.float32)
        basis = principal_components(flat, self.mean_texture.flatten().float(), self.components)
        self.texture_basis.copy_(basis)
        # Each face's coefficients in the basis (unit-sized by construction), its shape as offsets.
        live = basis.norm(dim=1) > 0
        coefficients = torch.zeros(len(flat), self.components, device=device)
        if live.any():
            solution = torch.linalg.lstsq(basis[live].T, (flat - self.mean_texture.flatten()).T).solution
            coefficients[:, live] = solution.T
        mean_unit = pixels_to_unit(self.mean_landmarks, self.image_size)
        offsets = (pixels_to_unit(landmarks.to(device).float(), self.image_size) - mean_unit).flatten(1)
        weight, bias = ridge_regression(
            embeddings.to(device).float(), torch.cat([offsets, coefficients], 1), self.ridge
        )
        self.head.weight.copy_(weight)
        self.head.bias.copy_(bias)

    def forward(self, embedding: torch.Tensor) -> FaceOutput:
        out = self.head(embedding)
        offsets = out[:, : 2 * self.num_landmarks].view(-1, self.num_landmarks, 2)
        mean_unit = pixels_to_unit(self.mean_landmarks, self.image_size)
        landmarks = unit_to_pixels(mean_unit.to(out.dtype) + offsets, self.image_size)
        change = out[:, 2 * self.num_landmarks :] @ self.texture_basis.to(out.dtype)
        size = self.image_size
        texture = (self.mean_texture.to(out.dtype) + change.view(-1, 3, size, size)).clamp(0.0, 1.0)
        return FaceOutput(image=self.render(texture, landmarks).clamp(0.0, 1.0), landmarks=landmarks, texture=texture)


def principal_components(rows: torch.Tensor, mean: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` principal directions of ``rows`` [N, P] around ``mean`` [P], each scaled by its
    standard deviation over the rows (so a row's coefficients are about unit-sized); zero rows pad the
    basis when the data has fewer directions than ``count``.

    Example:
        >>> principal_components(torch.randn(50, 12), torch.zeros(12), 3).shape
        torch.Size([3, 12])
    """
    centered = rows - mean
    rank = min(count, centered.shape[0] - 1, centered.shape[1])
    basis = torch.zeros(count, centered.shape[1], device=rows.device)
    if rank < 1:
        return basis
    # Randomised SVD: the top directions of an [N, P] matrix without forming P x P.
    _, singular, directions = torch.svd_lowrank(centered, q=min(rank + 10, *centered.shape), niter=4)
    scale = singular[:rank] / (centered.shape[0] - 1) ** 0.5
    basis[:rank] = directions[:, :rank].T * scale[:, None]
    return basis


def ridge_regression(inputs: torch.Tensor, targets: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [T, D] and bias [T] minimising ``|targets - inputs W^T - b|^2 + lambda |W|^2``, where lambda is
    ``ridge`` times the inputs' total variance over their D dimensions (the mean eigenvalue of the scatter).

    Example:
        >>> x = torch.randn(100, 3, dtype=torch.float64)
        >>> weight, bias = ridge_regression(x, x @ torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64) + 5, 0.0)
        >>> weight.round(decimals=6).tolist(), round(bias.item(), 6)
        ([[1.0, 2.0, 3.0]], 5.0)
    """
    x = inputs.double()
    y = targets.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    scatter = xc.T @ xc
    penalty = ridge * scatter.trace() / scatter.shape[0]
    weight = torch.linalg.solve(scatter + penalty * torch.eye(len(scatter), dtype=x.dtype, device=x.device), xc.T @ yc)
    bias = y_mean - x_mean @ weight
    return weight.T.to(inputs.dtype), bias.to(inputs.dtype)


@DECODERS.register("linear_face_decoder")
def linear_face_decoder(**overrides: object) -> LinearFaceDecoder:
    """The linear face model at VGG-Face's 4096-D in and 224 x 224 out, 128 texture components."""
    config: dict[str, object] = {"embed_dim": 4096, "components": 128, "image_size": 224, "flow_size": 56}
    return LinearFaceDecoder(**{**config, **overrides})  # type: ignore[arg-type]


@DECODERS.register("linear_face_decoder_tiny")
def linear_face_decoder_tiny(**overrides: object) -> LinearFaceDecoder:
    """The same at 64-D in (vggface_tiny, s2f_cnn_tiny) and 64 x 64 out, 32 texture components."""
    config: dict[str, object] = {"embed_dim": 64, "components": 32, "image_size": 64, "flow_size": 32}
    return LinearFaceDecoder(**{**config, **overrides})  # type: ignore[arg-type]

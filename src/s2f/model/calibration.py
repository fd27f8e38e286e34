"""Closed-form calibration of predicted embeddings: where they sit, and how far apart they are drawn.

Two things go wrong between a trained voice encoder and the face it draws, and neither is fixed by
more training:

- **Offset.** The losses that make an encoder move off the average face measure *directions* from
  the mean teacher embedding (``center_embeddings``) or between unit vectors; neither pins where the
  predictions' own mean lies. Measured on the demo's three seeds, the mean prediction over the
  encoder's own training clips sits 1.6 to 3.1 degrees away from the mean teacher embedding it was
  trained towards. Moving the predictions so that the two means meet is the least-squares fit of the
  output bias, done once after training.
- **Spread.** A regression predicts the *conditional mean* of the face given the voice: the average
  of every face that voice could belong to. Its predictions lie closer to the mean face than any real
  face does (on the demo's seeds, 1.7 to 2.0 times closer), and a decoder fitted on real faces draws
  the average of plausible faces: an ageless blur. For *drawing* only, the deviation from the mean is
  scaled back to the spread of real faces, so the drawn face is a typical face of that voice rather
  than their average. The embedding that :meth:`~s2f.model.speech2face.Speech2Face.forward` returns, and that
  retrieval and the feature distances measure, is not scaled.
- **Reach.** A voice unlike any the encoder heard (a real man deeper than every man of a synthetic
  world) can land further from the mean than any face the decoder was fitted on, and a decoder
  asked to extrapolate draws distorted, over-saturated faces. So a drawn embedding is kept within
  ``radius``, the largest distance of a training face from the mean, along its own direction.

Both are fitted on clips the encoder trained on (:func:`fit_calibration`), never on held-out ones:
:func:`s2f.eval.calibrate.calibrate_on_shards` refuses the split that is reported (``test`` unless told otherwise), and
:func:`~s2f.eval.evaluate` refuses to report the split a model was calibrated on.

Example:
    >>> import torch
    >>> true = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    >>> predicted = torch.tensor([[2.5, 1.0], [3.5, 1.0]])  # off by (1, 1), half the spread
    >>> calibration = fit_calibration(predicted, true)
    >>> calibration(predicted)
    tensor([[1.5000, 0.0000],
            [2.5000, 0.0000]])
    >>> calibration.spread
    2.0
    >>> calibration.for_drawing(calibration(predicted))
    tensor([[1., 0.],
            [3., 0.]])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["EmbeddingCalibration", "fit_calibration"]


class EmbeddingCalibration(nn.Module):
    """Moves predictions onto the teacher's mean and, for drawing, scales them to real faces' spread.

    Args:
        embed_dim: Size of the embeddings.
        spread: How much farther from the mean real faces lie than predictions do, on average
            (1 draws the predictions as they are).
        fitted_on: A JSON-ready note of what the calibration was measured on (clips, seconds, split).
        radius: The largest distance from the mean a drawn embedding may have (the farthest training
            face's); ``None`` draws at any distance, as calibrations saved before it existed do.
    """

    target_mean: torch.Tensor
    predicted_mean: torch.Tensor

    def __init__(
        self, embed_dim: int, spread: float = 1.0, fitted_on: dict[str, Any] | None = None, radius: float | None = None
    ) -> None:
        super().__init__()
        if not spread > 0:
            raise ConfigError(f"a calibration's spread must be positive, got {spread}")
        if radius is not None and not radius > 0:
            raise ConfigError(f"a calibration's radius must be positive, got {radius}")
        self.radius = None if radius is None else float(radius)
        self.embed_dim = embed_dim
        self.spread = float(spread)
        self.fitted_on = dict(fitted_on or {})
        self.register_buffer("target_mean", torch.zeros(embed_dim))
        self.register_buffer("predicted_mean", torch.zeros(embed_dim))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """The predictions [B, D] moved so that their training mean is the teacher's."""
        return embedding - self.predicted_mean.to(embedding) + self.target_mean.to(embedding)

    def for_drawing(self, embedding: torch.Tensor) -> torch.Tensor:
        """Calibrated predictions [B, D] scaled away from the mean to the spread of real faces, each
        kept within the radius of the training faces."""
        mean = self.target_mean.to(embedding)
        offset = self.spread * (embedding - mean)
        if self.radius is not None:
            distance = offset.norm(dim=-1, keepdim=True)
            offset = offset * (self.radius / distance.clamp_min(self.radius))
        return mean + offset

    def config(self) -> dict[str, Any]:
        """The constructor's arguments, as JSON-ready values (the means travel in the weights file)."""
        return {"embed_dim": self.embed_dim, "spread": self.spread, "fitted_on": self.fitted_on, "radius": self.radius}

    def extra_repr(self) -> str:
        radius = "" if self.radius is None else f", radius={self.radius:.3f}"
        return f"embed_dim={self.embed_dim}, spread={self.spread:.3f}{radius}"


def fit_calibration(
    predicted: torch.Tensor, true: torch.Tensor, fitted_on: dict[str, Any] | None = None
) -> EmbeddingCalibration:
    """The calibration of ``predicted`` embeddings [N, D] against the teacher's ``true`` ones [N, D].

    The spread is the ratio of the mean distances to each set's own mean: one number, so the
    direction of every prediction from the mean is kept. The radius is the largest distance of a true
    embedding from its mean.
    """
    if predicted.shape != true.shape or predicted.ndim != 2:
        raise ConfigError(f"calibration needs [N, D] predictions and true embeddings, got {tuple(predicted.shape)} "
                          f"and {tuple(true.shape)}")  # fmt: skip
    if len(predicted) < 2:
        raise ConfigError(f"calibration needs at least 2 clips, got {len(predicted)}")
    predicted, true = predicted.double(), true.double()
    predicted_mean, target_mean = predicted.mean(0), true.mean(0)
    predicted_spread = (predicted - predicted_mean).norm(dim=1).mean()
    if predicted_spread <= 0:
        raise ConfigError("every prediction is the same embedding: the encoder has learnt nothing to calibrate")
    distances = (true - target_mean).norm(dim=1)
    spread = float(distances.mean() / predicted_spread)
    radius = float(distances.max())
    calibration = EmbeddingCalibration(true.shape[1], spread, {"clips": len(true), **(fitted_on or {})}, radius)
    calibration.target_mean.copy_(target_mean.float())
    calibration.predicted_mean.copy_(predicted_mean.float())
    return calibration

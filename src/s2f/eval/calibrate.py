"""Fitting a model's calibration on a split of a shard root: the predictions are read where the data lives.

The closed-form fit itself is :func:`s2f.model.calibration.fit_calibration`; this module feeds it the
encoder's predictions on clips it trained on and refuses the split whose figures are reported.
"""

from __future__ import annotations

import os
from typing import Any

from ..model.calibration import EmbeddingCalibration, fit_calibration
from .data import load_held_out, predict_embeddings
from .protocol import refuse_reported_split

__all__ = ["calibrate_on_shards"]


def calibrate_on_shards(
    model: Any,
    data_dir: str | os.PathLike[str],
    split: str = "train",
    *,
    max_clips: int | None = 5000,
    seed: int = 0,
    progress: bool = False,
    reported_split: str | None = "test",
) -> EmbeddingCalibration:
    """Fits a calibration for ``model`` (a :class:`~s2f.model.speech2face.Speech2Face`) on a split of a shard root
    and attaches it; returns it.

    Use the split the encoder trained on: held-out clips would leak into what is evaluated on them.
    The model hears each clip at its own ``clip_seconds``, as at inference.

    Raises:
        ConfigError: ``split`` is ``reported_split``, the split whose figures will be reported.
    """
    refuse_reported_split(split, reported_split, "calibrate")

    clips = load_held_out(data_dir, split, max_clips=max_clips, seed=seed)
    model.calibration = None  # measure the encoder itself, not an earlier calibration
    predicted = predict_embeddings(model, clips.audio, model.clip_seconds, progress=progress)
    fitted_on = {"split": split, "seconds": model.clip_seconds}
    calibration = fit_calibration(predicted, clips.embeddings, fitted_on).to(model.device)
    model.calibration = calibration
    return calibration

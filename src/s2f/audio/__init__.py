"""Audio in, spectrogram out: reading speech (:mod:`s2f.audio.loading`) and the paper's STFT front end
(:mod:`s2f.audio.spectrogram`). Import the names from here.

Example:
    >>> import torch
    >>> from s2f.audio import SpectrogramFrontend, Waveform, load_clip
    >>> clip = load_clip(Waveform(torch.full((8_000,), 0.5), 16_000))   # 0.5 s, looped to 6 s
    >>> SpectrogramFrontend()(clip).shape
    torch.Size([1, 2, 598, 257])
"""

from __future__ import annotations

from .loading import (
    DECODE_MARGIN_SECONDS,
    MAX_SAMPLE_RATE,
    SAMPLE_RATE,
    AudioInput,
    Waveform,
    fit_to_length,
    load_audio,
    load_clip,
)
from .spectrogram import SpectrogramFrontend, num_frames

__all__ = [
    "DECODE_MARGIN_SECONDS",
    "MAX_SAMPLE_RATE",
    "SAMPLE_RATE",
    "AudioInput",
    "SpectrogramFrontend",
    "Waveform",
    "fit_to_length",
    "load_audio",
    "load_clip",
    "num_frames",
]

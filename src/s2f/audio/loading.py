"""Audio in: the one place where s2f reads, resamples, crops and loops speech.

Every entry point accepts the same :data:`AudioInput`: a path, a binary file object, a
:class:`Waveform`, or a ``(samples, sample_rate)`` pair. Files are decoded with soundfile
(wav, flac, ogg) and, for anything else (mp4, m4a, mp3, webm), with PyAV. As the paper does,
a clip is the first 6 s of 16 kHz mono, shorter clips repeated (:func:`load_clip`).

Example:
    >>> import torch
    >>> load_audio(Waveform(torch.ones(2, 32_000) * 0.5, 32_000)).shape
    torch.Size([16000])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import AudioError, first_line

__all__ = [
    "DECODE_MARGIN_SECONDS",
    "MAX_SAMPLE_RATE",
    "SAMPLE_RATE",
    "AudioInput",
    "Waveform",
    "fit_to_length",
    "load_audio",
    "load_clip",
]

SAMPLE_RATE = 16_000
# Decoded past the clip, so resampling sees the same neighbourhood at its end (load_clip, s2f serve).
DECODE_MARGIN_SECONDS = 1.0
# Above any recording's rate (384 kHz is the highest studio rate): a header that says more is lying, and
# would make "the first seconds" a huge number of samples.
MAX_SAMPLE_RATE = 384_000
# Samples decoded per channel before the channels are averaged: memory stays near one block per channel,
# however many channels a header claims.
_BLOCK_FRAMES = 65_536
# Peak amplitude below which a clip counts as silent (about -80 dBFS): nothing to learn from.
SILENCE_PEAK = 1e-4


@dataclass(frozen=True)
class Waveform:
    """Samples already in memory: ``samples`` is [T] or [C, T] (channels first), float or int16."""

    samples: torch.Tensor | np.ndarray
    sample_rate: int


AudioInput = str | os.PathLike | BinaryIO | Waveform | tuple
"""A path, a binary file object, a :class:`Waveform`, or ``(samples, sample_rate)``."""


def load_audio(source: AudioInput, sample_rate: int = SAMPLE_RATE, *, max_seconds: float | None = None) -> torch.Tensor:
    """Reads any :data:`AudioInput` as mono float32 samples in [-1, 1] at ``sample_rate``.

    Args:
        source: The audio.
        sample_rate: The rate to return it at.
        max_seconds: Decode only the first ``max_seconds`` (a 2-hour recording then costs what its start
            costs); the silence check looks at that part only. ``None`` reads everything.

    Raises:
        AudioError: one line naming the input, when it is missing, a directory, unreadable, empty,
            not finite (NaN or infinite samples) or silent.
    """
    name = _describe(source)
    samples, rate = _decode(source, name, max_seconds)
    wave = torch.as_tensor(samples)
    if wave.dtype == torch.int16:
        wave = wave.float() / 32768.0
    wave = wave.float()
    if wave.ndim == 2:
        wave = wave.mean(dim=0)
    elif wave.ndim != 1:
        raise AudioError(f"{name}: expected samples shaped [T] or [channels, T], got {tuple(wave.shape)}")
    if wave.numel() == 0:
        raise AudioError(f"{name}: the audio is empty (0 samples); give a clip with speech in it")
    if not torch.isfinite(wave).all():
        raise AudioError(f"{name}: the audio holds NaN or infinite samples")
    if rate != sample_rate:
        import torchaudio.functional as AF

        wave = AF.resample(wave, orig_freq=int(rate), new_freq=sample_rate)
    if wave.abs().max().item() < SILENCE_PEAK:
        raise AudioError(f"{name}: the audio is silent (peak below -80 dBFS); give a clip with speech in it")
    return wave.contiguous()


def fit_to_length(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Crops ``wave`` [..., T] to its first ``num_samples``, or loop-repeats a shorter one up to it.

    The paper repeats clips shorter than 6 s rather than padding them with silence.

    Example:
        >>> fit_to_length(torch.tensor([1.0, 2.0, 3.0]), 7)
        tensor([1., 2., 3., 1., 2., 3., 1.])
    """
    length = wave.shape[-1]
    if length == 0:
        raise AudioError("cannot fit an empty clip to length; give a clip with speech in it")
    if length >= num_samples:
        return wave[..., :num_samples]
    repeats = -(-num_samples // length)
    return wave.repeat(*([1] * (wave.ndim - 1)), repeats)[..., :num_samples]


def load_clip(source: AudioInput, seconds: float = 6.0, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """:func:`load_audio`, then :func:`fit_to_length` to exactly ``seconds``.

    Decodes at most ``seconds`` plus :data:`DECODE_MARGIN_SECONDS`, whatever a file's header says about
    its length: an hour-long upload costs what its first seconds cost.
    """
    wave = load_audio(source, sample_rate, max_seconds=seconds + DECODE_MARGIN_SECONDS)
    return fit_to_length(wave, round(seconds * sample_rate))


def _describe(source: AudioInput) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (Waveform, tuple)):
        return "waveform"
    return getattr(source, "name", None) or "audio file object"


def _decode(source: AudioInput, name: str, max_seconds: float | None) -> tuple[np.ndarray | torch.Tensor, int]:
    if isinstance(source, Waveform):
        return source.samples, source.sample_rate
    if isinstance(source, tuple):
        if len(source) != 2:
            raise AudioError(f"{name}: give audio as (samples, sample_rate), got a tuple of {len(source)}")
        return source[0], int(source[1])
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise AudioError(f"{path} is a directory; give an audio file")
        if not path.is_file():
            raise AudioError(f"{path}: no such audio file; check the path")
        return _decode_file(path, name, max_seconds)
    if hasattr(source, "read"):
        return _decode_file(source, name, max_seconds)
    raise AudioError(f"unsupported audio input {type(source).__name__}; give a path, a file object or (samples, rate)")


def _decode_file(file: Path | BinaryIO, name: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    start = file.tell() if not isinstance(file, Path) and file.seekable() else None
    try:
        with sf.SoundFile(file) as handle:
            rate = _checked_rate(handle.samplerate, name)
            wanted = math.inf if max_seconds is None else math.ceil(max_seconds * rate)
            blocks: list[np.ndarray] = []
            # Until the data ends or enough is read, whichever comes first: a header that lies about the
            # length in either direction changes nothing.
            while (size := int(min(_BLOCK_FRAMES, wanted - sum(b.shape[-1] for b in blocks)))) > 0:
                block = handle.read(size, dtype="float32", always_2d=True)
                if len(block):
                    blocks.append(_mono(block.T))
                if len(block) < size:
                    break
            return _joined(blocks), rate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass  # not a format libsndfile reads (mp4, m4a, mp3, webm...): let FFmpeg try
    if start is not None and not isinstance(file, Path):
        file.seek(start)
    return _decode_with_av(file, name, max_seconds)


def _decode_with_av(file: Path | BinaryIO, name: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import av

    try:
        container = av.open(os.fspath(file) if isinstance(file, Path) else file, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"{name}: unreadable audio ({first_line(exc)}); is it a wav/flac/mp4 file?") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{name}: the file has no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # FFmpeg found a stream but no decoder for it (e.g. a WAV of 0-bit samples)
            raise AudioError(f"{name}: no decoder for its audio stream; is it a wav/flac/mp4 file?")
        chunks: list[np.ndarray] = []
        rate = _checked_rate(stream.codec_context.sample_rate or SAMPLE_RATE, name)
        try:
            # Resample to planar float so every codec's layout comes out the same.
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout.name, rate=rate)
            # Counted as decoded, not as the container says: a header that understates the length
            # (a VBR mp3 with a forged frame count) cannot make this read more.
            wanted, decoded = math.inf if max_seconds is None else max_seconds * rate, 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(_mono(out.to_ndarray()))
                    decoded += chunks[-1].shape[-1]
                if decoded >= wanted:
                    break
            for out in resampler.resample(None):
                chunks.append(_mono(out.to_ndarray()))
        except (av.error.FFmpegError, ValueError) as exc:
            raise AudioError(f"{name}: the audio stream is corrupt ({first_line(exc)})") from None
    return _joined(chunks), rate


def _checked_rate(rate: int, name: str) -> int:
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: a sample rate of {rate} Hz is not audio s2f reads (up to {MAX_SAMPLE_RATE} Hz)")
    return int(rate)


def _mono(block: np.ndarray) -> np.ndarray:
    """[C, n] -> [1, n]: the channels' mean, taken block by block (the same numbers as over the whole file)."""
    if block.shape[0] == 1:
        return block.astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).mean(dim=0, keepdim=True).numpy()


def _joined(blocks: list[np.ndarray]) -> np.ndarray:
    if not blocks:
        return np.zeros((1, 0), dtype=np.float32)
    return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

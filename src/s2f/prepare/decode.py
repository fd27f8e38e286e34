"""Decoding one clip: the first seconds of its speech at 16 kHz mono and the frame(s) its face comes from.

Videos are read with PyAV (FFmpeg) by *seeking*: the demuxer jumps to the key frame before the
segment start and decodes only from there, for the audio up to ``max_seconds`` past the start and
for each requested frame time, so a 6 s segment of an hour-long video costs about as much as a
6 s file. WAV/FLAC/OGG audio is read with soundfile, which seeks by sample.

Everything that can go wrong with a file is a :class:`MediaError` with a reason code from
:mod:`s2f.prepare.rejects`, so the caller can record it and move on.

Example:
    >>> import numpy as np, soundfile, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> soundfile.write(path, 0.1 * np.sin(np.arange(48_000) / 5.0), 16_000)
    >>> audio = read_audio(path, start=0.5, seconds=6.0)
    >>> audio.shape, audio.dtype
    ((40000,), dtype('float32'))
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2f.errors import MediaError, first_line

from .rejects import NO_AUDIO, NO_VIDEO, SILENT, TOO_SHORT, UNDECODABLE, VIDEO_MISSING
from .sources import ClipTask

__all__ = ["DecodedClip", "MediaError", "decode_clip", "read_audio", "read_frames", "read_image", "rms_dbfs"]

SAMPLE_RATE = 16_000
_SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg")


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence).

    Example:
        >>> round(rms_dbfs(np.full(100, 0.5, np.float32)), 2)
        -6.02
    """
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _open(path: str) -> Any:  # an av InputContainer; av is imported lazily
    import av

    if not os.path.isfile(path):
        raise MediaError(VIDEO_MISSING, f"{path} not found")
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise MediaError(UNDECODABLE, f"{path}: cannot open ({first_line(err)})") from None


def _read_audio_av(path: str, start: float, seconds: float) -> np.ndarray:
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(NO_AUDIO, f"{path} has no audio stream")
        stream = container.streams.audio[0]
        if start > 0:
            try:
                container.seek(max(0, int(start / stream.time_base)), stream=stream, backward=True)
            except av.error.FFmpegError as err:
                raise MediaError(UNDECODABLE, f"{path}: cannot seek to {start:.2f} s ({first_line(err)})") from None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        have = 0
        need = None
        try:
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = float(frame.time) if frame.time is not None else 0.0
                    # Decoding starts at the packet before `start`; count what must be dropped.
                    need = round((start - first_time) * SAMPLE_RATE) + round(seconds * SAMPLE_RATE)
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    have += chunk.size
                if need is not None and have >= need:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as err:
            raise MediaError(UNDECODABLE, f"{path}: the audio stream is corrupt ({first_line(err)})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    skip = max(0, round((start - (first_time or 0.0)) * SAMPLE_RATE))
    return samples[skip : skip + round(seconds * SAMPLE_RATE)].astype(np.float32, copy=False)


def _read_audio_soundfile(path: str, start: float, seconds: float) -> np.ndarray:
    import soundfile

    try:
        with soundfile.SoundFile(path) as handle:
            rate = handle.samplerate
            first = round(start * rate)
            if first > 0:
                handle.seek(min(first, handle.frames))
            samples = handle.read(round(seconds * rate), dtype="float32", always_2d=True).mean(axis=1)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise MediaError(UNDECODABLE, f"{path}: cannot read audio ({first_line(err)})") from None
    if rate != SAMPLE_RATE and samples.size:
        import torch
        import torchaudio.functional as AF

        samples = AF.resample(torch.from_numpy(samples), rate, SAMPLE_RATE).numpy()
    return samples.astype(np.float32, copy=False)


def read_audio(path: str, start: float = 0.0, seconds: float = 6.0) -> np.ndarray:
    """Mono float32 samples at 16 kHz from ``start`` (media seconds), at most ``seconds`` long.

    Raises:
        MediaError: ``video_missing``, ``undecodable`` or ``no_audio``.
    """
    if not os.path.isfile(path):
        raise MediaError(VIDEO_MISSING, f"{path} not found")
    if os.path.splitext(path)[1].lower() in _SOUNDFILE_EXTENSIONS:
        return _read_audio_soundfile(path, start, seconds)
    return _read_audio_av(path, start, seconds)


def read_frames(path: str, times: list[float]) -> list[tuple[float, np.ndarray]]:
    """The frames shown at ``times`` (media seconds) as ``(frame time, uint8 RGB [H, W, 3])``.

    Each time costs one seek to the key frame before it and decoding up to it. A time past the
    end of the stream gives the last frame.

    Raises:
        MediaError: ``video_missing``, ``undecodable`` or ``no_video``.
    """
    import av

    frames = []
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(NO_VIDEO, f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 25)
        for target in times:
            chosen = None
            try:
                container.seek(max(0, int(target / stream.time_base)), stream=stream, backward=True)
                for frame in container.decode(stream):
                    chosen = frame
                    if frame.time is not None and frame.time >= target - 0.5 / rate:
                        break
            except (av.error.FFmpegError, ValueError) as err:
                raise MediaError(UNDECODABLE, f"{path}: the video stream is corrupt ({first_line(err)})") from None
            if chosen is None:
                raise MediaError(UNDECODABLE, f"{path}: no video frame could be decoded at {target:.2f} s")
            frames.append((float(chosen.time or 0.0), chosen.to_ndarray(format="rgb24")))
    return frames


def read_image(path: str) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3], upright (EXIF rotation applied).

    Raises:
        MediaError: ``video_missing`` or ``undecodable``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.isfile(path):
        raise MediaError(VIDEO_MISSING, f"{path} not found")
    try:
        with Image.open(path) as image:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)  # writable
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise MediaError(UNDECODABLE, f"{path}: cannot read the face image ({first_line(err)})") from None


@dataclass
class DecodedClip:
    """What a clip decodes to.

    Attributes:
        audio: int16 mono samples at 16 kHz, at most ``max_seconds`` long.
        audio_start: Source time of the first sample, seconds.
        frames: uint8 RGB frames [H, W, 3] to look for the face in.
        frame_times: Source time of each frame, seconds.
        seconds: Wall time spent decoding.
    """

    audio: np.ndarray
    audio_start: float
    frames: list[np.ndarray]
    frame_times: list[float]
    seconds: float = 0.0


def decode_clip(
    task: ClipTask,
    *,
    max_seconds: float = 6.0,
    min_seconds: float = 3.0,
    num_frames: int = 1,
    silence_dbfs: float = -60.0,
) -> DecodedClip:
    """Decodes the first ``max_seconds`` of a clip's speech and ``num_frames`` frames from that span.

    The first frame is taken at the segment start, where AVSpeech gives the face center; further
    ones are spread evenly over the kept audio.

    Raises:
        MediaError: With reason ``video_missing``, ``undecodable``, ``no_audio``, ``no_video``,
            ``too_short`` or ``silent``.
    """
    began = time.perf_counter()
    segment = max_seconds if task.end is None else min(max_seconds, task.end - task.start)
    if segment < min_seconds:
        raise MediaError(TOO_SHORT, f"the segment is {segment:.2f} s long, less than the minimum {min_seconds:g} s")
    media_start = task.start - task.offset
    path = task.video or task.audio
    if path is None:
        raise MediaError(NO_VIDEO, f"clip {task.clip_id} names no media file")
    samples = read_audio(path, media_start, segment)
    if not np.isfinite(samples).all():  # would turn into arbitrary int16 samples on the way to the shards
        raise MediaError(UNDECODABLE, f"{path}: the audio decodes to NaN or infinite samples")
    kept = samples.size / SAMPLE_RATE
    if kept < min_seconds:
        raise MediaError(TOO_SHORT, f"{path}: {kept:.2f} s of audio from {task.start:.2f} s, need {min_seconds:g} s")
    level = rms_dbfs(samples)
    if level < silence_dbfs:
        raise MediaError(SILENT, f"{path}: audio level {level:.1f} dBFS, below {silence_dbfs:g} dBFS")
    audio = np.clip(np.round(samples.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)

    if task.video is not None:
        times = [media_start + kept * k / max(1, num_frames) for k in range(max(1, num_frames))]
        decoded = read_frames(task.video, times)
        frames = [image for _, image in decoded]
        frame_times = [t + task.offset for t, _ in decoded]
    else:
        if task.image is None:
            raise MediaError(NO_VIDEO, f"{path}: no video and no face image for clip {task.clip_id}")
        frames, frame_times = [read_image(task.image)], [task.start]
    return DecodedClip(audio, task.start, frames, frame_times, time.perf_counter() - began)

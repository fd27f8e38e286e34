"""Writing one clip as real media: an mp4 (MPEG-4 picture + AAC sound) or a wav + jpg pair.

The mp4 holds a still frame at a low frame rate, with a single key frame, and 16 kHz mono AAC: a
few frames is all ``s2f prepare`` looks at, and writing many identical frames costs time for
nothing. Files are written under a temporary name and renamed, so an interrupted run never leaves
a half-written clip that a resumed run would skip.

Encoding is single-threaded and FFmpeg's muxer writes no creation time, so the same inputs give
byte-identical files.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> frame = np.zeros((64, 96, 3), np.uint8)
    >>> path = write_mp4(os.path.join(tempfile.mkdtemp(), "clip.mp4"), frame, np.zeros(16000, np.float32))
    >>> os.path.getsize(path) > 0
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from s2f._atomic import atomic_path

__all__ = ["FRAME_RATE", "write_mp4", "write_wav_jpg"]

FRAME_RATE = 1
AUDIO_CHUNK = 1024


def write_mp4(
    path: str | os.PathLike[str],
    frame: np.ndarray | None,
    audio: np.ndarray | None,
    sample_rate: int = 16_000,
    *,
    seconds: float | None = None,
    fps: int = FRAME_RATE,
    key_frame_every: int | None = None,
    bit_rate: int = 1_500_000,
    stored_rate: int | None = None,
    aac_coder: str = "fast",
) -> Path:
    """Writes an mp4 showing ``frame`` throughout, with ``audio`` as its AAC track; the one mp4 writer of s2f.

    Args:
        path: Output file; its folder is created. Written under a temporary name, then renamed.
        frame: uint8 RGB [H, W, 3] with even sides, or ``None`` for a file without a video stream.
        audio: Mono float samples at ``sample_rate``, or ``None`` for a file without an audio stream.
        sample_rate: Rate of ``audio``.
        seconds: Length of the video; by default the audio's. Audio beyond it is still written.
        fps: Frame rate of the video stream.
        key_frame_every: Frames between key frames; ``None``: the first frame is the only one.
        bit_rate: Video bit rate.
        stored_rate: Rate the audio is stored at (resampled to it), e.g. 48000 as in most downloaded
            videos; by default ``sample_rate``.
        aac_coder: FFmpeg's AAC quantisation search, ``"fast"`` or ``"twoloop"`` (FFmpeg's default, which
            costs 1.7x as much per clip and decodes further from the voice; ``benchmarks/synth_throughput.py``).
    """
    import av

    if frame is None and audio is None:
        raise ValueError(f"{path}: an mp4 needs a frame, audio, or both")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    rate = stored_rate or sample_rate
    samples = np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32)
    if audio is not None and rate != sample_rate:
        from scipy.signal import resample_poly

        samples = resample_poly(samples.astype(np.float64), rate, sample_rate).astype(np.float32)
    length = seconds if seconds is not None else samples.size / rate
    # Not fsync'ed: generated clips are many, small and made again from their seed; whole-or-absent is enough.
    with atomic_path(target, suffix=".mp4", durable=False) as partial, av.open(str(partial), "w", "mp4") as container:
        video = None
        if frame is not None:
            video = container.add_stream("mpeg4", rate=fps)
            video.width, video.height, video.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
            video.bit_rate = bit_rate
            video.codec_context.gop_size = key_frame_every or 10_000
            video.thread_count = 1
        sound = None if audio is None else _mono_aac_stream(container, rate, aac_coder)
        written = 0

        def mux_audio_until(end: float) -> None:
            nonlocal written
            while sound is not None and written < samples.size and written < end:
                block = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[None, written : written + AUDIO_CHUNK]), format="fltp", layout="mono"
                )
                block.sample_rate, block.pts = rate, written
                container.mux(sound.encode(block))
                written += AUDIO_CHUNK

        picture = None if frame is None else av.VideoFrame.from_ndarray(frame, format="rgb24")
        for index in range(max(1, int(np.ceil(length * fps - 1e-9)))):
            # Interleave by time, as real files are, so a seek lands near both streams.
            mux_audio_until((index + 1) * rate / fps)
            if video is not None and picture is not None:
                picture.pts = index
                container.mux(video.encode(picture))
        mux_audio_until(samples.size)
        if sound is not None:
            container.mux(sound.encode(None))
        if video is not None:
            container.mux(video.encode(None))
    return target


def _mono_aac_stream(container: Any, rate: int, coder: str) -> Any:
    sound = container.add_stream("aac", rate=rate, options={"aac_coder": coder})
    sound.layout = "mono"
    sound.codec_context.thread_count = 1
    return sound


def write_wav_jpg(
    path: str | os.PathLike[str], frame: np.ndarray, audio: np.ndarray, sample_rate: int = 16_000
) -> Path:
    """Writes ``path`` (a .wav, 16-bit PCM) and the frame beside it as a same-stem .jpg; returns the wav."""
    import soundfile as sf
    from PIL import Image

    target = Path(path)
    with atomic_path(target.with_suffix(".jpg"), suffix=".jpg", durable=False) as partial:
        Image.fromarray(frame).save(partial, format="JPEG", quality=92)
    with atomic_path(target, suffix=".wav", durable=False) as partial:
        sf.write(partial, audio, sample_rate, subtype="PCM_16", format="WAV")
    return target

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

import numpy as np

__all__ = ["FRAME_RATE", "write_mp4", "write_wav_jpg"]

FRAME_RATE = 1
AUDIO_CHUNK = 1024


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_mp4(path: str | os.PathLike[str], frame: np.ndarray, audio: np.ndarray, sample_rate: int = 16_000) -> Path:
    """Writes ``frame`` (uint8 RGB, even sides) for the length of ``audio`` (float mono) as an mp4."""
    import av

    target = Path(path)
    partial = _partial(target)
    seconds = audio.size / sample_rate
    with av.open(str(partial), mode="w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=FRAME_RATE)
        video.width, video.height, video.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
        video.bit_rate = 1_500_000
        video.codec_context.gop_size = 10_000
        video.thread_count = 1
        sound = container.add_stream("aac", rate=sample_rate)
        sound.layout = "mono"
        sound.codec_context.thread_count = 1
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        frames = max(1, int(np.ceil(seconds * FRAME_RATE)))
        written = 0
        for index in range(frames):
            # Interleave by time, as real files are, so a seek lands near both streams.
            while written < audio.size and written < (index + 1) * sample_rate / FRAME_RATE:
                block = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[None, written : written + AUDIO_CHUNK], np.float32),
                    format="fltp",
                    layout="mono",
                )
                block.sample_rate, block.pts = sample_rate, written
                container.mux(sound.encode(block))
                written += AUDIO_CHUNK
            picture.pts = index
            container.mux(video.encode(picture))
        container.mux(sound.encode(None))
        container.mux(video.encode(None))
    os.replace(partial, target)
    return target


def write_wav_jpg(
    path: str | os.PathLike[str], frame: np.ndarray, audio: np.ndarray, sample_rate: int = 16_000
) -> Path:
    """Writes ``path`` (a .wav, 16-bit PCM) and the frame beside it as a same-stem .jpg; returns the wav."""
    import soundfile as sf
    from PIL import Image

    target = Path(path)
    image, partial_image = target.with_suffix(".jpg"), _partial(target.with_suffix(".jpg"))
    Image.fromarray(frame).save(partial_image, format="JPEG", quality=92)
    os.replace(partial_image, image)
    partial = _partial(target)
    sf.write(partial, audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(partial, target)
    return target

"""Real video files to exercise ``s2f prepare`` on any machine: real face photos, a synthetic voice.

No face or speech data set can be downloaded by tests or benchmarks, so this module *makes* talking
videos: public-domain portraits that ship inside PyPI packages (scikit-image's astronaut, Eileen
Collins; matplotlib's Grace Hopper) placed on a textured background, with speech-like audio from
:func:`s2f.synth.toy.synthesize_voice`, encoded by FFmpeg through PyAV as MPEG-4 video with key frames
every second and AAC audio at 48 kHz, as downloaded videos are. The photos need the ``dev`` extra
(scikit-image, matplotlib).

Example:
    >>> import tempfile, os
    >>> frame, boxes = compose_frame([("astronaut", (40, 20), 300)])
    >>> frame.shape, [tuple(round(v) for v in box) for box in boxes]
    ((360, 640, 3), [(146, 56, 197, 121)])
    >>> path = write_video(os.path.join(tempfile.mkdtemp(), "a.mp4"), frame, speech(2.0), fps=5)
    >>> os.path.getsize(path) > 10_000
    True
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2f.extras import missing_extra_error

__all__ = ["FACE_BOXES", "compose_frame", "photo", "speech", "write_video"]

# The face (MTCNN's box) in each photo, in its own pixels: where a placed photo's face will be.
FACE_BOXES = {"astronaut": (181.0, 62.0, 268.0, 172.0), "grace_hopper": (174.0, 120.0, 356.0, 340.0)}
AUDIO_RATE = 48_000


@functools.cache
def photo(name: str) -> np.ndarray:
    """One of the bundled portraits as uint8 RGB: ``"astronaut"`` (512x512) or ``"grace_hopper"`` (512x600)."""
    try:
        if name == "astronaut":
            from skimage import data

            return np.ascontiguousarray(data.astronaut())
        if name == "grace_hopper":
            import matplotlib
            from PIL import Image

            path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ImportError as err:
        raise missing_extra_error("demo", "the sample photos", [err.name or "skimage"]) from None
    raise ValueError(f"unknown photo {name!r}; choose one of {sorted(FACE_BOXES)}")


def compose_frame(
    placements: Sequence[tuple[str, tuple[int, int], int]], size: tuple[int, int] = (640, 360), seed: int = 0
) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A frame with photos pasted on a textured background, and where their faces are.

    Args:
        placements: ``(photo name, (left, top), height)`` per photo; the photo is scaled to
            ``height`` pixels tall and must fit in the frame.
        size: ``(width, height)`` of the frame.
        seed: Seed of the background texture.

    Returns:
        The uint8 RGB frame and each photo's face box ``(x0, y0, x1, y1)`` in frame pixels.
    """
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([60 + 40 * xx / width, 70 + 30 * yy / height, 90 + 20 * (xx + yy) / (width + height)], axis=-1)
    frame = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    boxes = []
    for name, (left, top), tall in placements:
        picture = photo(name)
        scale = tall / picture.shape[0]
        wide = round(picture.shape[1] * scale)
        resized = np.asarray(Image.fromarray(picture).resize((wide, tall), Image.Resampling.LANCZOS))
        if left < 0 or top < 0 or left + wide > width or top + tall > height:
            raise ValueError(f"{name} at {(left, top)} scaled to {wide}x{tall} does not fit a {width}x{height} frame")
        frame[top : top + tall, left : left + wide] = resized
        x0, y0, x1, y1 = FACE_BOXES[name]
        boxes.append((left + x0 * scale, top + y0 * scale, left + x1 * scale, top + y1 * scale))
    return frame, boxes


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like float32 audio at 16 kHz (a source-filter voice with syllables), peak below 0.6."""
    from .toy import speaker_traits, synthesize_voice

    rng = np.random.default_rng(seed)
    return synthesize_voice(speaker_traits(rng), seconds, rng)


def write_video(
    path: str | os.PathLike[str],
    frame: np.ndarray,
    audio: np.ndarray | None,
    *,
    seconds: float | None = None,
    fps: int = 25,
    audio_rate: int = 16_000,
) -> Path:
    """Writes an mp4 showing ``frame`` throughout, with ``audio`` (16 kHz mono float) as its AAC track.

    Args:
        path: Output file.
        frame: uint8 RGB [H, W, 3] (even width and height).
        audio: Samples at ``audio_rate``, or ``None`` for a video without an audio stream.
        seconds: Video length; by default the audio's length.
        fps: Frame rate; a key frame every second.
        audio_rate: Rate of ``audio``; it is stored at 48 kHz, as most downloaded videos are.
    """
    from .video import write_mp4

    return write_mp4(
        path,
        frame,
        audio,
        audio_rate,
        seconds=seconds,
        fps=fps,
        key_frame_every=fps,
        bit_rate=2_000_000,
        stored_rate=AUDIO_RATE,
    )

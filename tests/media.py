"""Real media files for tests: wav/flac through soundfile, mp4 through PyAV (FFmpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from s2f.synth import video


def tone(seconds: float, frequency: float = 220.0, sample_rate: int = 16_000, amplitude: float = 0.3) -> np.ndarray:
    """A sine with a little noise: a clip that is neither silent nor trivially periodic."""
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(int(frequency))
    wave = amplitude * np.sin(2 * np.pi * frequency * time) + 0.01 * rng.standard_normal(time.size)
    return wave.astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16_000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, sample_rate, subtype=subtype)
    return path


def write_mp4(path: Path, samples: np.ndarray | None, sample_rate: int = 16_000, *, frames: int = 0) -> Path:
    """An mp4 with an AAC audio track (unless ``samples`` is None) and ``frames`` grey 64x64 frames at 25 fps."""
    grey = np.full((64, 64, 3), 128, dtype=np.uint8) if frames else None
    seconds = frames / 25 if frames else None
    return video.write_mp4(path, grey, samples, sample_rate, seconds=seconds, fps=25, key_frame_every=25)

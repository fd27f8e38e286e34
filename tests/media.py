"""Real media files for tests: wav/flac through soundfile, mp4 through PyAV (FFmpeg)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf


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
    """An mp4 with an AAC audio track (unless ``samples`` is None) and ``frames`` grey video frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=25) if frames else None
        if video is not None:
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=sample_rate) if samples is not None else None
        if audio is not None:
            audio.layout = "mono"
            assert samples is not None
            chunk = 1024
            for start in range(0, samples.size, chunk):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="fltp", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
        if video is not None:
            for index in range(frames):
                image = np.full((64, 64, 3), 128, dtype=np.uint8)
                picture = av.VideoFrame.from_ndarray(image, format="rgb24")
                picture.pts = index
                container.mux(video.encode(picture))
            container.mux(video.encode(None))
    return path

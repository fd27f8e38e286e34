"""What `predict` and `load_audio` do with audio that is not speech: each case one line, or a stated limit."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from s2f import ENCODERS, Speech2Face
from s2f.audio import load_audio, load_clip
from s2f.errors import AudioError

RATE = 16_000


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        0.3 * np.sin(np.arange(int(seconds * RATE)) * 0.05) + 0.05 * rng.standard_normal(int(seconds * RATE))
    ).astype(np.float32)


def _one_line(error: pytest.ExceptionInfo[BaseException], *needles: str) -> None:
    text = str(error.value)
    assert "\n" not in text and all(needle in text for needle in needles), text


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_wav_holding_nan_or_inf_is_one_line(tmp_path: Path, bad: float) -> None:
    samples = _speech(2.0)
    samples[RATE // 2] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    with pytest.raises(AudioError) as error:
        load_audio(path)
    _one_line(error, str(path), "NaN or infinite")


def test_a_zero_sample_file_and_a_directory_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), RATE)
    with pytest.raises(AudioError) as error:
        load_audio(empty)
    _one_line(error, str(empty), "0 samples")
    with pytest.raises(AudioError) as error:
        load_audio(tmp_path)
    _one_line(error, str(tmp_path), "is a directory")


def _two_hour_wav(path: Path) -> Path:
    """A real 2-hour 16 kHz WAV: 10 s of sound, then silence stored as a sparse hole (no disk, no time to write)."""
    head = (np.clip(_speech(10.0), -1, 1) * 32767).astype(np.int16)
    frames = 2 * 3600 * RATE
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16", format="WAV") as handle:
        handle.write(head)
    with open(path, "r+b") as handle:  # declare the full length, then extend the file with zeros
        data_bytes = frames * 2
        handle.seek(4)
        handle.write((36 + data_bytes).to_bytes(4, "little"))
        handle.seek(40)
        handle.write(data_bytes.to_bytes(4, "little"))
        handle.truncate(44 + data_bytes)
    assert sf.info(path).duration == pytest.approx(7200.0)
    return path


def test_a_two_hour_file_costs_only_the_clip_predict_reads(tmp_path: Path) -> None:
    path = _two_hour_wav(tmp_path / "lecture.wav")
    tracemalloc.start()
    started = time.perf_counter()
    clip = load_clip(path, seconds=6.0)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # All of it would be 115 million samples: 460 MB of float32 before the crop.
    assert peak < 20e6 and seconds < 2.0, (peak, seconds)
    expected = sf.read(path, frames=6 * RATE, dtype="float32")[0]
    assert clip.shape == (6 * RATE,) and torch.equal(clip, torch.from_numpy(expected))
    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=6.0)
    assert model.predict(path).embedding.shape == (64,)


def test_the_first_seconds_decide_silence_for_a_clip(tmp_path: Path) -> None:
    # The clip predict uses is the file's start; a file that is silent there is refused, not padded.
    samples = np.concatenate([np.zeros(8 * RATE, np.float32), _speech(2.0)])
    path = tmp_path / "late.wav"
    sf.write(path, samples, RATE)
    with pytest.raises(AudioError) as error:
        load_clip(path, seconds=3.0)
    _one_line(error, "silent")
    assert load_audio(path).shape == (10 * RATE,)  # read whole, the file is not silent

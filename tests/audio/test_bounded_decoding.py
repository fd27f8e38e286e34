"""A voice coming in is decoded only as far as the model hears, whatever its header says.

``s2f serve``, ``s2f predict`` and ``Speech2Face.predict`` all decode through :func:`s2f.audio.load_clip`:
the clip and a one-second margin. The files here are real formats made by the tests: an mp3 whose
header understates its length (a high-bitrate head on a low-bitrate body, so FFmpeg's estimate is a
fraction of the truth), a WAV whose size fields claim more than it holds, 96 kHz float audio with
eight channels, and a header sample rate no recording has.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from s2f import DECODERS, ENCODERS, Speech2Face
from s2f.audio import DECODE_MARGIN_SECONDS, load_audio, load_clip
from s2f.errors import AudioError
from s2f.serve import FaceService, Limits, probe_seconds

RATE = 16_000


def _speech(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 140 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _encoded(samples: np.ndarray, bit_rate: int, container: str = "mp3") -> bytes:
    """Encoded audio; mp3 as bare frames (no Xing/Info header, no ID3 tag) so concatenations stay one stream."""
    buffer = io.BytesIO()
    options = {"write_xing": "0", "id3v2_version": "0"} if container == "mp3" else {}
    with av.open(buffer, "w", format="mp3" if container == "mp3" else "ipod", options=options) as out:
        stream = out.add_stream("mp3" if container == "mp3" else "aac", rate=RATE)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        for start in range(0, samples.size, 1024 * 32):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024 * 32], format="flt", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def _ffmpeg_seconds(path: Path) -> float:
    """The length FFmpeg decodes when it reads to the end, whatever the header says."""
    with av.open(str(path)) as container:
        return sum(frame.samples for frame in container.decode(audio=0)) / RATE


@pytest.fixture(scope="module")
def long_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four minutes of speech-like audio as an mp3 (libsndfile decodes it) and an m4a (FFmpeg does), and
    the mp3 behind a 2-second 128 kbps head, so that its header's length estimate is a fraction of the truth."""
    folder = tmp_path_factory.mktemp("long")
    minute = _speech(60.0, RATE, 1)
    body = _encoded(minute, 8_000)
    files = {"mp3": folder / "long.mp3", "m4a": folder / "long.m4a", "lying": folder / "lying.mp3"}
    files["mp3"].write_bytes(body * 4)
    files["m4a"].write_bytes(_encoded(np.tile(minute, 4), 16_000, "m4a"))
    files["lying"].write_bytes(_encoded(_speech(2.0, RATE, 0), 128_000) + body * 4)
    return files


def _numpy_peak(run: object) -> int:
    """Peak bytes traced while ``run()`` runs (numpy's buffers are traced; the decoded samples live there)."""
    tracemalloc.start()
    try:
        run()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_lying_mp3s_header_understates_its_length(long_files: dict[str, Path]) -> None:
    truth = _ffmpeg_seconds(long_files["lying"])
    assert truth > 240
    assert probe_seconds(long_files["lying"]) < truth / 4  # what a length check that trusts the header sees


@pytest.mark.parametrize("kind", ["mp3", "m4a"])
def test_load_clip_decodes_the_clip_and_a_margin_however_long_the_file_is(
    long_files: dict[str, Path], kind: str
) -> None:
    path = long_files[kind]
    everything = _numpy_peak(lambda: load_audio(path))
    clip = _numpy_peak(lambda: load_clip(path, 3.0))
    assert everything > 200 * RATE * 4  # the measurement sees decoded samples: reading all costs the whole file
    assert clip < (3.0 + DECODE_MARGIN_SECONDS) * RATE * 4 + 2**20, (clip, everything)
    torch.testing.assert_close(load_clip(path, 3.0), load_audio(path)[: 3 * RATE], rtol=0, atol=1e-6)


def test_serve_decodes_no_more_than_predict_and_answers_the_same(long_files: dict[str, Path]) -> None:
    torch.manual_seed(0)
    model = Speech2Face(
        ENCODERS.create("s2f_cnn_tiny"), DECODERS.create("linear_face_decoder_tiny"), clip_seconds=3.0
    ).eval()
    service = FaceService(model, None, Limits())
    for kind in ("lying", "m4a"):
        path = long_files[kind]
        service.answer(path)  # warm-up: first calls build caches that are not the request's cost
        peak = _numpy_peak(lambda path=path: service.answer(path))
        assert peak < 200 * RATE * 4 / 4, (kind, peak)  # the old path decoded all of it: over 12 MB of samples
        answer = service.answer(path)
        assert torch.equal(answer.prediction.embedding, model.predict(path).embedding)


def test_eight_channels_at_96_khz_mix_down_block_by_block_to_the_same_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    channels = (0.1 * rng.standard_normal((2 * 96_000, 8))).astype(np.float32)
    path = tmp_path / "many.wav"
    sf.write(path, channels, 96_000, subtype="FLOAT")
    import torchaudio.functional as AF

    expected = AF.resample(torch.from_numpy(channels.T.copy()).mean(dim=0), 96_000, RATE)
    assert torch.equal(load_audio(path), expected)


def test_a_wav_whose_size_fields_claim_more_than_it_holds_reads_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "lying.wav"
    samples = _speech(2.0, RATE, 4)
    sf.write(path, samples, RATE, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 0xFFFFFFF0)  # RIFF size
    where = data.index(b"data")
    data[where + 4 : where + 8] = struct.pack("<I", 0xFFFFFFF0 - where)  # data chunk size: ~4 GB
    path.write_bytes(bytes(data))
    wave = load_audio(path)
    assert torch.equal(wave, torch.from_numpy(samples))
    assert load_clip(path, 1.0).shape == (RATE,)


def test_a_header_sample_rate_no_recording_has_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "fast.wav"
    sf.write(path, _speech(1.0, RATE, 5), RATE, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 12 : fmt + 16] = struct.pack("<I", 2_000_000_000)  # sample rate
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="sample rate of 2000000000 Hz") as error:
        load_clip(path, 1.0)
    assert "\n" not in str(error.value)

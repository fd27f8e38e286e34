"""Property-based fuzzing of what s2f reads from files: only s2f's own errors come out, never a crash or a hang.

hypothesis draws random bytes and damaged versions of real files (a WAV, a saved model's config.json,
a shard chunk, a manifest); each case must either load or raise an :class:`~s2f.errors.S2FError`,
within the per-case deadline.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from s2f import ENCODERS, Speech2Face
from s2f.audio import load_audio
from s2f.errors import S2FError
from s2f.shards import iter_records, read_manifest

# hypothesis keeps a cache in .hypothesis/ of the working directory; keep the checkout clean.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="s2f-hypothesis-"))

FUZZ = settings(
    max_examples=40,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,
)


def _wav_bytes() -> bytes:
    buffer = io.BytesIO()
    samples = 0.3 * np.sin(np.arange(8000) * 0.05).astype(np.float32)
    sf.write(buffer, samples, 16_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


WAV = _wav_bytes()


def _damaged(original: bytes) -> st.SearchStrategy[bytes]:
    """The bytes cut at a random length, or with a few random bytes overwritten."""
    cut = st.integers(0, len(original)).map(lambda n: original[:n])
    flips = st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1, max_size=8)

    def overwrite(changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(original)
        for position, value in changes:
            data[position] = value
        return bytes(data)

    return st.one_of(cut, flips.map(overwrite), st.binary(max_size=2048))


@FUZZ
@given(data=_damaged(WAV))
@example(data=WAV[:34] + b"\x00" + WAV[35:])  # 0 bits per sample: FFmpeg opens a stream it has no decoder for
def test_the_audio_loader_answers_any_bytes_with_a_wave_or_an_audio_error(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    try:
        wave = load_audio(path)
    except S2FError as error:
        assert "\n" not in str(error)
    else:
        assert wave.ndim == 1 and torch.isfinite(wave).all()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=1.0, teacher={"name": "toy"})
    return model.save_pretrained(tmp_path_factory.mktemp("fuzz") / "model")


@FUZZ
@given(key=st.sampled_from(["hidden_dim", "embed_dim", "channels", "pool_after", "strided", "kernel_size"]), value=JSON)
def test_the_config_loader_answers_any_init_arg_with_a_model_or_an_s2f_error(
    saved_model: Path, tmp_path: Path, key: str, value: object
) -> None:
    folder = Path(shutil.copytree(saved_model, tmp_path / "model", dirs_exist_ok=True))
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["init_args"][key] = value
    (folder / "config.json").write_text(json.dumps(config))
    try:
        Speech2Face.from_pretrained(folder)
    except S2FError as error:
        assert "\n" not in str(error)


@FUZZ
@given(config=JSON)
def test_the_config_loader_answers_any_json_with_an_s2f_error(
    saved_model: Path, tmp_path: Path, config: object
) -> None:
    folder = Path(shutil.copytree(saved_model, tmp_path / "model", dirs_exist_ok=True))
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(S2FError):
        Speech2Face.from_pretrained(folder)


@pytest.fixture(scope="module")
def small_shards(shard_factory) -> Path:  # type: ignore[no-untyped-def]
    return shard_factory.toy(speakers=4, clips_per_speaker=2, held_out=1, chunk_bytes="64KB")


@FUZZ
@given(data=st.data())
def test_the_shard_reader_answers_a_damaged_chunk_or_manifest_with_a_shard_error(
    small_shards: Path, tmp_path: Path, data: st.DataObject
) -> None:
    root = Path(shutil.copytree(small_shards, tmp_path / "shards", dirs_exist_ok=True))
    target = data.draw(st.sampled_from(["chunk", "manifest", "index"]))
    if target == "chunk":
        index = json.loads((root / "train" / "index.json").read_text())
        path = root / "train" / data.draw(st.sampled_from([c["filename"] for c in index["chunks"]]))
    else:
        path = root / ("s2f_shards.json" if target == "manifest" else "train/index.json")
    original = path.read_bytes()
    damaged = data.draw(_damaged(original).filter(lambda b: b != original))
    path.write_bytes(damaged)
    try:
        read_manifest(root)
        rows = sum(1 for _ in iter_records(root, "train"))
    except S2FError as error:
        assert "\n" not in str(error)
    else:
        # Only a change the format cannot see (a manifest field nobody reads, JSON spacing) may pass.
        assert target != "chunk" and rows == read_manifest(small_shards).splits["train"].clips

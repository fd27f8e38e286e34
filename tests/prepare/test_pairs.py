"""build_shards_from_pairs on real .wav/.jpg/.png files and a CSV, read back through the shard readers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from s2f.data import PairItem, build_shards_from_pairs, iter_records, read_manifest
from s2f.errors import AudioError, S2FError

SR = 16_000


class FakeTeacher:
    """Stands in for a FaceTeacher: mean colour per channel, tiled to embed_dim; records its calls."""

    name = "fake-teacher"
    embed_dim = 12

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], torch.dtype]] = []

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append((tuple(images.shape), images.dtype))
        means = images.float().mean(dim=(2, 3)) / 255.0  # [B, 3]
        return means.repeat(1, self.embed_dim // 3)


def write_wav(path: Path, seconds: float, seed: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.random.default_rng(seed).standard_normal(round(seconds * SR)) * 3000).astype(np.int16)
    sf.write(path, samples, SR, subtype="PCM_16")
    return samples


def write_face(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (160, 200)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], dict[str, tuple[int, int, int]]]:
    """7 pairs of 3 speakers in data/, one 7.5 s clip (cropped to 6 s), a CSV with relative paths."""
    data = tmp_path / "data"
    rows = []
    audio: dict[str, np.ndarray] = {}
    colours: dict[str, tuple[int, int, int]] = {}
    plan = [("ann", 2.0), ("ann", 7.5), ("ann", 0.7), ("bob", 3.0), ("bob", 6.0), ("cy", 1.0), ("cy", 4.0)]
    for i, (speaker, seconds) in enumerate(plan):
        wav = f"{speaker}/clip{i}.wav"
        face = f"{speaker}/clip{i}.{'png' if i % 2 else 'jpg'}"
        audio[f"{speaker}/clip{i}"] = write_wav(data / wav, seconds, seed=i)
        colours[f"{speaker}/clip{i}"] = (30 * i, 200 - 20 * i, 100)
        write_face(data / face, colours[f"{speaker}/clip{i}"], size=(224, 224) if i == 0 else (150 + i, 180))
        rows.append(
            {
                "speaker_id": speaker,
                "audio": wav,
                "face": face,
                "clip_id": "",
                "split": "test" if speaker == "cy" else "",
                "gender": {"ann": "female", "bob": "male", "cy": ""}[speaker],
            }
        )
    with open(data / "pairs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return data, audio, colours


def all_records(root: Path) -> list:
    return [record for split in read_manifest(root).splits for record in iter_records(root, split)]


def test_build_from_csv_round_trip(dataset, tmp_path: Path) -> None:
    data, audio, colours = dataset
    teacher = FakeTeacher()
    manifest = build_shards_from_pairs(data / "pairs.csv", tmp_path / "shards", teacher, batch_size=3)
    assert manifest.teacher == "fake-teacher" and manifest.embed_dim == 12
    assert manifest.num_clips == 7
    assert manifest.splits["test"].speakers >= 1
    # Faces reach the teacher as uint8 [B, 3, 224, 224], in batches of batch_size.
    assert teacher.calls == [((b, 3, 224, 224), torch.uint8) for b in (3, 3, 1)]

    records = {r.clip_id: r for r in all_records(tmp_path / "shards")}
    assert sorted(records) == sorted(audio)
    for clip_id, record in records.items():
        np.testing.assert_array_equal(record.audio, audio[clip_id][: 6 * SR])  # first 6 s, bit-exact
        assert record.source_video == f"{clip_id}.wav"
        assert record.source_end == pytest.approx(min(len(audio[clip_id]), 6 * SR) / SR)
        colour = np.array(colours[clip_id], dtype=np.float64)
        assert np.abs(record.face.reshape(-1, 3).mean(axis=0) - colour).max() < 2.0
        # The teacher saw the source image as decoded (JPEG shifts a flat colour by a level or two).
        source = next(data.glob(f"{clip_id}.*g"))
        seen = np.asarray(Image.open(source).convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
        expected = np.tile(seen / 255.0, 4).astype(np.float16)
        np.testing.assert_array_equal(record.embedding, expected)
        speaker = clip_id.split("/")[0]
        assert record.speaker_id == speaker
        assert record.metadata == ({} if speaker == "cy" else {"gender": {"ann": "female", "bob": "male"}[speaker]})
        if speaker == "cy":
            assert record.split == "test"
    assert len(records["ann/clip1"].audio) == 6 * SR  # the 7.5 s clip was cropped


def test_build_from_pair_items(tmp_path: Path) -> None:
    wav, face = tmp_path / "a.wav", tmp_path / "a.png"
    samples = write_wav(wav, 1.5, seed=3)
    write_face(face, (10, 20, 30))
    pairs = [PairItem("spk", wav, face, clip_id="only", split="val", metadata={"age": "41"})]
    manifest = build_shards_from_pairs(pairs, tmp_path / "out", FakeTeacher(), max_seconds=1.0)
    assert manifest.max_seconds == 1.0 and list(manifest.splits) == ["val"]
    (record,) = iter_records(tmp_path / "out", "val")
    assert record.clip_id == "only" and record.metadata == {"age": "41"}
    np.testing.assert_array_equal(record.audio, samples[:SR])


def test_missing_audio_file_is_named(dataset, tmp_path: Path) -> None:
    data, _, _ = dataset
    (data / "bob" / "clip4.wav").unlink()
    with pytest.raises(AudioError) as err:
        build_shards_from_pairs(data / "pairs.csv", tmp_path / "shards", FakeTeacher())
    message = str(err.value)
    assert "clip4.wav" in message and "pairs.csv:6" in message and "\n" not in message
    with pytest.raises(S2FError):  # no manifest: the half-built folder is not mistaken for shards
        read_manifest(tmp_path / "shards")


def test_silent_audio_is_an_error(tmp_path: Path) -> None:
    wav, face = tmp_path / "quiet.wav", tmp_path / "quiet.jpg"
    sf.write(wav, np.zeros(SR, np.int16), SR, subtype="PCM_16")
    write_face(face, (1, 2, 3))
    with pytest.raises(AudioError, match=r"quiet\.wav"):
        build_shards_from_pairs([PairItem("s", wav, face)], tmp_path / "out", FakeTeacher())


def test_unreadable_face_is_named(dataset, tmp_path: Path) -> None:
    data, _, _ = dataset
    (data / "ann" / "clip2.jpg").write_text("this is not an image")
    with pytest.raises(S2FError) as err:
        build_shards_from_pairs(data / "pairs.csv", tmp_path / "shards", FakeTeacher())
    message = str(err.value)
    assert "clip2.jpg" in message and "face image" in message and "\n" not in message


def test_csv_without_required_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("speaker,audio\nx,y.wav\n")
    with pytest.raises(S2FError, match=r"missing column\(s\) speaker_id, face"):
        build_shards_from_pairs(bad, tmp_path / "out", FakeTeacher())
    with pytest.raises(S2FError, match="does not exist"):
        build_shards_from_pairs(tmp_path / "nope.csv", tmp_path / "out", FakeTeacher())


def test_teacher_with_wrong_output_shape(tmp_path: Path) -> None:
    wav, face = tmp_path / "a.wav", tmp_path / "a.jpg"
    write_wav(wav, 1.0, seed=1)
    write_face(face, (5, 5, 5))

    class Wrong(FakeTeacher):
        embed_dim = 6

        def embed_images(self, images: torch.Tensor) -> torch.Tensor:
            return torch.zeros(images.shape[0], 5)

    with pytest.raises(ValueError, match=r"shape \(1, 5\).*expected \(1, 6\)"):
        build_shards_from_pairs([PairItem("s", wav, face)], tmp_path / "out", Wrong())

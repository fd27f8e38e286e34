"""Round trips through real shard folders: writer -> litdata chunks -> readers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers.shards import ShardFactory, random_record, write_shards
from s2f.errors import ShardFormatError
from s2f.shards import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    ClipDataset,
    ClipRecord,
    ShardWriter,
    assign_split,
    iter_records,
    read_manifest,
)

D = 16
SR = 16_000


def make_record(
    rng: np.random.Generator, clip_id: str, speaker_id: str, num_samples: int = SR, **fields: Any
) -> ClipRecord:
    return random_record(rng, clip_id, speaker_id, num_samples, embed_dim=D, **fields)


def _small(folder: Path) -> tuple[Path, list[ClipRecord]]:
    rng = np.random.default_rng(0)
    lengths = [8_000, 96_000, 40_000, 16_123]
    records = []
    for s, (speaker, split) in enumerate([("ann", "train"), ("bob", "train"), ("cat", "val")]):
        for c, n in enumerate(lengths):
            records.append(
                make_record(
                    rng,
                    f"{speaker}-{c}",
                    speaker,
                    n,
                    split=split,
                    float_audio=s == 1,
                    num_landmarks=5 if c % 2 else 0,
                    metadata={"gender": "f" if s != 1 else "m", "age": 20 + s, "language": "en"},
                )
            )
    # Small chunks so the reader has to cross chunk boundaries.
    root = write_shards(folder / "shards", records, teacher="toy-teacher", embed_dim=D, chunk_bytes="300KB")
    return root, records


@pytest.fixture(scope="module")
def small(shard_factory: ShardFactory) -> tuple[Path, list[ClipRecord]]:
    """3 speakers x 4 clips (0.5 s to exactly 6 s), two speakers in train and one in val."""
    return shard_factory.build("small", _small)


def expected_int16(record: ClipRecord) -> np.ndarray:
    audio = np.asarray(record.audio)
    if audio.dtype == np.int16:
        return audio
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def test_manifest_describes_the_shards(small: tuple[Path, list[ClipRecord]]) -> None:
    root, _ = small
    manifest = read_manifest(root)
    assert manifest.version == FORMAT_VERSION
    assert manifest.teacher == "toy-teacher"
    assert manifest.embed_dim == D
    assert manifest.audio_codec == "flac"
    assert {name: (info.clips, info.speakers) for name, info in manifest.splits.items()} == {
        "train": (8, 2),
        "val": (4, 1),
    }
    assert not (root / "test").exists(), "an empty split must not be written"
    on_disk = json.loads((root / MANIFEST_NAME).read_text())
    assert on_disk["format"] == "s2f-shards" and on_disk["sample_rate"] == SR and on_disk["face_size"] == 224


def test_iter_records_round_trip(small: tuple[Path, list[ClipRecord]]) -> None:
    root, records = small
    by_id = {r.clip_id: r for r in records}
    seen = []
    for split in ("train", "val"):
        for got in iter_records(root, split):
            want = by_id[got.clip_id]
            seen.append(got.clip_id)
            assert got.split == split
            assert got.speaker_id == want.speaker_id
            assert got.audio.dtype == np.int16
            np.testing.assert_array_equal(got.audio, expected_int16(want))  # FLAC is lossless for int16
            assert got.embedding.dtype == np.float16
            np.testing.assert_array_equal(got.embedding, want.embedding.astype(np.float16))
            np.testing.assert_array_equal(got.landmarks, want.landmarks)
            assert got.face.shape == (224, 224, 3) and got.face.dtype == np.uint8
            assert np.abs(got.face.astype(int) - want.face.astype(int)).mean() < 2.0
            assert got.metadata == want.metadata
            assert (got.source_video, got.source_start, got.source_end, got.frame_time) == (
                want.source_video,
                want.source_start,
                want.source_end,
                want.frame_time,
            )
    assert sorted(seen) == sorted(by_id)


def test_mean_embedding_averages_the_stored_embeddings(small: tuple[Path, list[ClipRecord]]) -> None:
    from s2f.data import iter_records, mean_embedding

    root, _ = small
    stored = np.stack([r.embedding.astype(np.float64) for r in iter_records(root, "train")])
    np.testing.assert_allclose(mean_embedding(root, "train").numpy(), stored.mean(0), atol=1e-6)
    np.testing.assert_allclose(mean_embedding(root, "train", max_clips=2).numpy(), stored[:2].mean(0), atol=1e-6)


def test_clip_dataset_decodes_rows(small: tuple[Path, list[ClipRecord]]) -> None:
    root, records = small
    by_id = {r.clip_id: r for r in records}
    dataset = ClipDataset(root, "train", decode_faces=True)
    assert len(dataset) == 8
    ids = []
    for index in range(len(dataset)):
        item = dataset[index]
        want = by_id[item["clip_id"]]
        ids.append(item["clip_id"])
        assert item["audio"].dtype == torch.float32
        torch.testing.assert_close(
            item["audio"], torch.from_numpy(expected_int16(want).astype(np.float32) / 32768.0), rtol=0, atol=0
        )
        assert item["audio"].abs().max() <= 1.0
        assert item["embedding"].dtype == torch.float32
        torch.testing.assert_close(
            item["embedding"], torch.from_numpy(want.embedding.astype(np.float16).astype(np.float32)), rtol=0, atol=0
        )
        assert item["landmarks"].shape == (want.landmarks.shape[0], 2)
        assert item["metadata"] == want.metadata
        face = item["face"]
        assert face.dtype == torch.uint8 and face.shape == (3, 224, 224)
        assert (face.permute(1, 2, 0).int() - torch.from_numpy(want.face).int()).abs().float().mean() < 2.0
    assert sorted(ids) == sorted(k for k, r in by_id.items() if r.split == "train")
    assert "face" not in ClipDataset(root, "val")[0]


def test_kept_audio_is_decoded_once_and_read_back_unchanged(
    small: tuple[Path, list[ClipRecord]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import s2f.shards.reader as reader

    root, records = small
    by_id = {r.clip_id: r for r in records}
    decoded: list[str] = []
    decode = reader._decode_audio
    monkeypatch.setattr(reader, "_decode_audio", lambda *args: decoded.append(args[3]) or decode(*args))
    dataset = ClipDataset(root, "train", shuffle=True, seed=3, keep_decoded_audio=True)
    for _ in range(3):
        for index in range(len(dataset)):
            item = dataset[index]
            expected = torch.from_numpy(expected_int16(by_id[item["clip_id"]]).astype(np.float32) / 32768.0)
            torch.testing.assert_close(item["audio"], expected, rtol=0, atol=0)
            item["audio"].zero_()  # a consumer that writes into its batch leaves the kept samples alone
    assert sorted(decoded) == sorted(k for k, r in by_id.items() if r.split == "train")  # each clip once
    decoded.clear()
    ClipDataset(root, "train")[0]
    assert len(decoded) == 1  # off by default


def test_pcm16_codec_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    record = make_record(rng, "c", "s", 12_345)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D, audio_codec="pcm16") as writer:
        split = writer.write(record)
    assert read_manifest(tmp_path).audio_codec == "pcm16"
    (got,) = list(iter_records(tmp_path, split))
    np.testing.assert_array_equal(got.audio, record.audio)


def test_file_path_strings_are_stored_as_text(tmp_path: Path) -> None:
    # litdata's default string serializer would store an existing file's *contents* for such strings.
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not really a video")
    record = make_record(np.random.default_rng(2), str(tmp_path / "id.wav"), "s")
    record.source_video = str(video)
    root = tmp_path / "shards"
    with ShardWriter(root, teacher="t", embed_dim=D) as writer:
        split = writer.write(record)
    (got,) = list(iter_records(root, split))
    assert got.source_video == str(video)
    index = json.loads((root / split / "index.json").read_text())
    assert set(name.split(":")[0] for name in index["config"]["data_format"]) <= {
        "str",
        "int",
        "float",
        "bytes",
        "numpy",
        "no_header_numpy",
    }


# ------------------------------------------------------------------------------------------ validation


def test_writer_rejects_audio_longer_than_max_seconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D) as writer:
        with pytest.raises(ValueError, match=r"clip 'too-long'.*max_seconds=6"):
            writer.write(make_record(rng, "too-long", "spk", 6 * SR + 1, split="val"))
        # The rejected clip neither counts nor pins its speaker's split.
        assert writer.write(make_record(rng, "ok", "spk", 6 * SR, split="test")) == "test"
    assert read_manifest(tmp_path).splits["test"].clips == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: setattr(r, "face", r.face[:100]), "face must be uint8"),
        (lambda r: setattr(r, "face", r.face.astype(np.float32)), "face must be uint8"),
        (lambda r: setattr(r, "embedding", np.zeros(D + 1)), "embedding must have shape"),
        (lambda r: setattr(r, "embedding", np.full(D, np.nan)), "finite"),
        (lambda r: setattr(r, "embedding", np.full(D, 1e6)), "float16 range"),
        (lambda r: setattr(r, "audio", np.zeros((2, 100), np.int16)), "mono"),
        (lambda r: setattr(r, "audio", np.zeros(0, np.int16)), "empty"),
        (lambda r: setattr(r, "audio", np.full(100, 1.5, np.float32)), r"\[-1, 1\]"),
        (lambda r: setattr(r, "audio", np.zeros(100, np.int32)), "int16 or float"),
        (lambda r: setattr(r, "landmarks", np.zeros((5, 3))), "landmarks"),
        (lambda r: setattr(r, "split", "dev"), "split must be one of"),
        (lambda r: setattr(r, "metadata", {"x": [1, 2]}), "metadata"),
        (lambda r: setattr(r, "source_start", float("nan")), "source_start"),
    ],
)
def test_writer_validates_records(tmp_path: Path, change, message: str) -> None:
    record = make_record(np.random.default_rng(4), "bad-clip", "s")
    change(record)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D) as writer:
        with pytest.raises(ValueError, match=message) as info:
            writer.write(record)
        assert "bad-clip" in str(info.value)
        assert "\n" not in str(info.value)


def test_duplicate_clip_ids_are_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D) as writer:
        writer.write(make_record(rng, "same", "a"))
        with pytest.raises(ValueError, match="already written"):
            writer.write(make_record(rng, "same", "b"))


def test_existing_shards_are_not_overwritten_by_accident(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D) as writer:
        writer.write(make_record(rng, "first", "a", split="train"))
    with pytest.raises(ShardFormatError, match="already holds shards"):
        ShardWriter(tmp_path, teacher="t", embed_dim=D)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D, overwrite=True) as writer:
        writer.write(make_record(rng, "second", "b", split="val"))
    assert list(read_manifest(tmp_path).splits) == ["val"]
    assert [r.clip_id for r in iter_records(tmp_path, "val")] == ["second"]


def test_failed_write_leaves_no_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(RuntimeError, match="boom"), ShardWriter(tmp_path, teacher="t", embed_dim=D) as writer:
        writer.write(make_record(rng, "a", "a"))
        raise RuntimeError("boom")
    with pytest.raises(ShardFormatError, match=r"s2f_shards\.json"):
        read_manifest(tmp_path)


# ------------------------------------------------------------------------------------------ splits


def test_assign_split_edges() -> None:
    assert assign_split("x", (1.0, 0.0, 0.0)) == "train"
    assert assign_split("x", (0.0, 0.0, 1.0)) == "test"
    with pytest.raises(ValueError, match="add up to 1"):
        assign_split("x", (0.5, 0.1, 0.1))


def test_assign_split_pinned_values() -> None:
    # The rule is part of the format: changing it would move speakers between splits of existing datasets.
    import hashlib

    for speaker in ("id10001", "id10002", "Ann Smith", "ünï"):
        position = int.from_bytes(hashlib.sha1(speaker.encode()).digest()[:8], "big") / 2.0**64
        expected = "train" if position < 0.8 else "val" if position < 0.9 else "test"
        assert assign_split(speaker) == expected


def test_hash_splits_keep_speakers_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    face = np.zeros((224, 224, 3), np.uint8)
    clips_per_speaker = 3
    with ShardWriter(tmp_path, teacher="t", embed_dim=4) as writer:
        for s in range(60):
            for c in range(clips_per_speaker):
                audio = rng.integers(-1000, 1000, 1600).astype(np.int16)
                writer.write(ClipRecord(f"s{s}-c{c}", f"speaker-{s}", audio, face, rng.standard_normal(4)))
    manifest = read_manifest(tmp_path)
    speakers_in: dict[str, set[str]] = {}
    all_ids: list[str] = []
    for split in manifest.splits:
        records = list(iter_records(tmp_path, split))
        assert len(records) == manifest.splits[split].clips
        all_ids += [r.clip_id for r in records]
        speakers_in[split] = {r.speaker_id for r in records}
        assert len(speakers_in[split]) == manifest.splits[split].speakers
        assert all(r.split == split for r in records)
    assert sorted(all_ids) == sorted(f"s{s}-c{c}" for s in range(60) for c in range(clips_per_speaker))
    splits = list(speakers_in)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not speakers_in[a] & speakers_in[b], f"speakers shared by {a} and {b}"
    counts = {name: len(speakers_in.get(name, ())) for name in ("train", "val", "test")}
    assert 38 <= counts["train"] <= 57, counts  # 48 expected; binomial spread
    assert counts["val"] + counts["test"] >= 3, counts


def test_explicit_splits_win_and_speakers_stay_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with ShardWriter(tmp_path, teacher="t", embed_dim=D) as writer:
        assert writer.write(make_record(rng, "a0", "a", split="test")) == "test"
        # A later clip without a split follows its speaker, not the hash.
        assert writer.write(make_record(rng, "a1", "a")) == "test"
        with pytest.raises(ValueError, match=r"speaker 'a' is given split 'val' but was already assigned to 'test'"):
            writer.write(make_record(rng, "a2", "a", split="val"))
        hashed = writer.write(make_record(rng, "b0", "b"))
        other = next(name for name in ("train", "val", "test") if name != hashed)
        with pytest.raises(ValueError, match="by hash"):
            writer.write(make_record(rng, "b1", "b", split=other))
    assert read_manifest(tmp_path).splits["test"].clips >= 2


# ------------------------------------------------------------------------------------------ manifest errors


def _single_line(err: pytest.ExceptionInfo[ShardFormatError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ShardFormatError) as err:
        read_manifest(missing)
    message = _single_line(err)
    assert str(missing) in message and "s2f prepare" in message


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ShardFormatError) as err:
        read_manifest(tmp_path)
    message = _single_line(err)
    assert str(tmp_path / MANIFEST_NAME) in message and "s2f prepare" in message


def _copy_manifest(src: Path, dst: Path, **changes: object) -> Path:
    dst.mkdir()
    data = json.loads((src / MANIFEST_NAME).read_text())
    data.update(changes)
    (dst / MANIFEST_NAME).write_text(json.dumps(data))
    return dst


def test_newer_format_version_is_refused(small: tuple[Path, list[ClipRecord]], tmp_path: Path) -> None:
    root = _copy_manifest(small[0], tmp_path / "v2", version=2, s2f_version="9.9.9")
    with pytest.raises(ShardFormatError) as err:
        read_manifest(root)
    message = _single_line(err)
    assert str(root / MANIFEST_NAME) in message
    assert "version" in message and "9.9.9" in message and "s2f prepare" in message and "upgrade" in message
    with pytest.raises(ShardFormatError, match="version"):
        ClipDataset(root, "train")


def test_wrong_format_and_broken_json(small: tuple[Path, list[ClipRecord]], tmp_path: Path) -> None:
    root = _copy_manifest(small[0], tmp_path / "other", format="something-else")
    with pytest.raises(ShardFormatError, match="not an s2f shard manifest") as err:
        read_manifest(root)
    _single_line(err)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ShardFormatError, match="not valid JSON") as err:
        read_manifest(broken)
    _single_line(err)
    incomplete = _copy_manifest(small[0], tmp_path / "incomplete")
    data = json.loads((incomplete / MANIFEST_NAME).read_text())
    del data["embed_dim"]
    (incomplete / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ShardFormatError, match="embed_dim"):
        read_manifest(incomplete)


def test_absent_split_has_a_clear_error(small: tuple[Path, list[ClipRecord]]) -> None:
    root, _ = small
    with pytest.raises(ShardFormatError, match=r"no 'test' split \(splits on disk: train, val\)") as err:
        ClipDataset(root, "test")
    _single_line(err)
    with pytest.raises(ShardFormatError, match="'test'"):
        list(iter_records(root, "test"))
    with pytest.raises(ValueError, match="unknown split"):
        ClipDataset(root, "training")


def test_rows_that_would_be_unpickled_are_refused(
    small: tuple[Path, list[ClipRecord]], writable_shards: Callable[[Path], Path]
) -> None:
    root = writable_shards(small[0])
    (index,) = [p / "index.json" for p in root.iterdir() if (p / "index.json").is_file()][:1]
    config = json.loads(index.read_text())
    config["config"]["data_format"][-1] = "pickle"
    index.write_text(json.dumps(config))
    split = index.parent.name
    with pytest.raises(ShardFormatError, match="would be unpickled"):
        next(iter_records(root, split))
    with pytest.raises(ShardFormatError, match="would be unpickled"):
        ClipDataset(root, split)

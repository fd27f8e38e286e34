"""Shard integrity: chunk checksums written at prepare time, verified once per chunk by readers and by `s2f check`.

Damage is made for real (a flipped byte in a chunk, a chunk cut short, a manifest whose counts lie)
and must surface as one line naming the file and the way back, never as garbage rows.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from s2f.cli import main as s2f_main
from s2f.errors import ShardFormatError
from s2f.shards import ClipDataset, iter_records
from s2f.shards.integrity import chunk_digest

LEGACY_SHARDS = Path(__file__).parents[1] / "fixtures" / "legacy" / "shards"


def _index(root: Path, split: str = "train") -> dict:
    return json.loads((root / split / "index.json").read_text())


def _chunk(root: Path, number: int = 1, split: str = "train") -> Path:
    return root / split / _index(root, split)["chunks"][number]["filename"]


def _read_all(root: Path, split: str = "train") -> int:
    return sum(1 for _ in iter_records(root, split))


def test_prepare_records_a_checksum_for_every_chunk(chunked_toy_shards: Path) -> None:
    for split in ("train", "val", "test"):
        chunks = _index(chunked_toy_shards, split)["chunks"]
        assert chunks and all(
            c["sha256"] == chunk_digest(str(chunked_toy_shards / split / c["filename"])) for c in chunks
        )
    assert len(_index(chunked_toy_shards)["chunks"]) > 2  # damage below hits one chunk among several


def test_a_flipped_byte_is_one_line_naming_the_chunk_when_its_rows_are_read(
    chunked_toy_shards: Path, writable_shards: Callable[[Path], Path]
) -> None:
    root = writable_shards(chunked_toy_shards)
    chunk = _chunk(root)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match="checksum does not match") as error:
        _read_all(root)
    assert str(chunk) in str(error.value) and "--overwrite" in str(error.value) and "\n" not in str(error.value)
    dataset = ClipDataset(root, "train")
    with pytest.raises(ShardFormatError, match=chunk.name):
        [dataset[i] for i in range(len(dataset))]
    with pytest.raises(ShardFormatError, match=chunk.name):  # training iterates, with litdata's chunk indices
        list(ClipDataset(root, "train", shuffle=True))


def test_a_truncated_chunk_is_one_line(chunked_toy_shards: Path, writable_shards: Callable[[Path], Path]) -> None:
    root = writable_shards(chunked_toy_shards)
    chunk = _chunk(root)
    chunk.write_bytes(chunk.read_bytes()[:-100])
    with pytest.raises(ShardFormatError, match=r"bytes, index\.json says .*truncated") as error:
        _read_all(root)
    assert str(chunk) in str(error.value)


def test_a_manifest_that_lies_about_counts_is_refused_before_reading(
    chunked_toy_shards: Path, writable_shards: Callable[[Path], Path]
) -> None:
    root = writable_shards(chunked_toy_shards)
    manifest = json.loads((root / "s2f_shards.json").read_text())
    manifest["splits"]["train"]["clips"] += 5
    (root / "s2f_shards.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardFormatError, match=r"says split 'train' holds .* its index\.json lists"):
        ClipDataset(root, "train")


def test_an_index_that_lies_about_a_chunks_rows_is_refused(
    chunked_toy_shards: Path, writable_shards: Callable[[Path], Path]
) -> None:
    root = writable_shards(chunked_toy_shards)
    index = _index(root)
    index["chunks"][0]["chunk_size"] += 1
    index["chunks"][1]["chunk_size"] -= 1  # the total still agrees with the manifest
    (root / "train" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardFormatError, match=r"rows, index\.json says"):
        _read_all(root)


def test_shards_from_before_checksums_still_read(tmp_path: Path) -> None:
    root = Path(shutil.copytree(LEGACY_SHARDS, tmp_path / "shards"))
    assert all("sha256" not in chunk for chunk in _index(root)["chunks"])
    assert _read_all(root) > 0


def test_s2f_check_verifies_a_whole_root(
    chunked_toy_shards: Path, writable_shards: Callable[[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert s2f_main(["check", str(chunked_toy_shards)]) == 0
    out = capsys.readouterr().out
    assert "train:" in out and "all intact" in out and "ok" in out
    root = writable_shards(chunked_toy_shards)
    chunk = _chunk(root, 0, "val")
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 1
    chunk.write_bytes(bytes(data))
    assert s2f_main(["check", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(chunk) in err and "checksum" in err


def test_s2f_check_says_which_chunks_it_could_not_checksum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(shutil.copytree(LEGACY_SHARDS, tmp_path / "shards"))
    assert s2f_main(["check", str(root)]) == 0
    assert "without a checksum" in capsys.readouterr().out


def test_s2f_check_of_a_url_says_it_reads_local_roots(capsys: pytest.CaptureFixture[str]) -> None:
    assert s2f_main(["check", "s3://bucket/shards"]) == 2
    assert "reads local shard roots" in capsys.readouterr().err

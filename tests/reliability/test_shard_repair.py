"""A corrupt chunk of a prepared root: the reader's one line names it and the recovery, and the recovery works.

Rerunning the same ``s2f prepare`` verifies the assembled chunks, redoes only the part that wrote the
damaged one, and leaves every other chunk as it was (same bytes, same modification time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.corpus import records
from s2f.errors import ShardFormatError
from s2f.prepare import prepare
from s2f.prepare.sources import read_avspeech
from s2f.shards import iter_records, read_manifest
from s2f.shards.integrity import check_root

WANTED = ("astro-01_x_1.000_7.500", "hopper_02_10.000_15.000", "two_faces_0.500_6.500")


@pytest.fixture(scope="module")
def corpus(prepare_corpus: Path) -> Path:
    return prepare_corpus  # shared read-only by every module (conftest.py)


def _prepare(corpus: Path, out: Path):  # type: ignore[no-untyped-def]
    tasks = [t for t in read_avspeech(corpus / "avspeech.csv", corpus / "videos") if t.clip_id in WANTED]
    return prepare(tasks, out, "dlib_resnet", num_workers=0, progress=False, part_size=1, batch_size=1)


def _chunks(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.glob("*/chunk-*.bin")}


def test_a_corrupt_chunk_is_rebuilt_by_rerunning_prepare_and_no_other_chunk_changes(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    _prepare(corpus, out)
    before, rows_before = _chunks(out), records(out)
    assert len(before) == len(WANTED) == len(rows_before)  # one clip a part, one chunk a part

    victim = out / sorted(before)[1]  # e.g. train/chunk-1-0.bin: the chunk of part 1
    part = victim.name.split("-")[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    # The reader's line names the chunk and the recovery.
    split = victim.parent.name
    with pytest.raises(ShardFormatError) as error:
        list(iter_records(out, split))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{victim}: chunk checksum does not match")
    assert f"run the same `s2f prepare` command again: it rebuilds part {part}, which wrote {victim.name}" in message

    capsys.readouterr()
    summary = _prepare(corpus, out)
    said = capsys.readouterr().err
    assert f"{victim}: chunk checksum does not match index.json (corrupt bytes); part {part}, which wrote it" in said
    assert summary.processed == 1  # only the clip of that part was prepared again

    assert [split for split, _, _ in check_root(read_manifest(out))]  # s2f check passes: every chunk verified
    after = _chunks(out)
    untouched = {name: value for name, value in before.items() if name != str(victim.relative_to(out))}
    assert {name: after[name] for name in untouched} == untouched  # same bytes, same mtime
    assert len(after) == len(before) and victim.name not in {Path(name).name for name in after}
    rows = records(out)
    assert sorted(rows) == sorted(rows_before)
    for clip_id, record in rows.items():
        np.testing.assert_array_equal(record.audio, rows_before[clip_id].audio)
        np.testing.assert_allclose(record.embedding, rows_before[clip_id].embedding, atol=0.02)

    # And with nothing damaged, a rerun redoes nothing.
    assert _prepare(corpus, out).processed == 0 and _chunks(out) == after


def test_a_damaged_chunk_no_part_wrote_is_one_line(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    _prepare(corpus, out)
    split_dir = next(out / s for s in ("train", "val", "test") if (out / s).is_dir())
    index = split_dir / "index.json"
    chunk = next(split_dir.glob("chunk-*.bin"))
    foreign = split_dir / "copied-in.bin"
    chunk.rename(foreign)
    index.write_text(index.read_text().replace(chunk.name, foreign.name))
    foreign.write_bytes(foreign.read_bytes()[:-1])
    with pytest.raises(ShardFormatError) as error:
        _prepare(corpus, out)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{foreign}: chunk is ")
    assert "no part of this root wrote it" in message

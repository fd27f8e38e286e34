"""The pieces that several rooms share, each in one place: a split's embeddings without decoding,
the disk-full line, quieting Lightning, and a teacher by name plus optional weights."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest

from helpers.shards import random_record, write_shards
from s2f.errors import ConfigError, DiskFullError, disk_full_error
from s2f.shards import iter_records, read_embeddings


def test_read_embeddings_gives_the_stored_rows_spread_evenly_over_the_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = [
        random_record(rng, f"c{i}", f"s{i % 3}", 1600, embed_dim=4, split="val", metadata={"n": i}) for i in range(9)
    ]
    write_shards(tmp_path, records, teacher="toy", embed_dim=4)
    stored = list(iter_records(tmp_path, "val"))

    embeddings, speakers, metadata = read_embeddings(tmp_path, "val", max_clips=3)
    picked = [stored[0], stored[4], stored[8]]  # first, middle, last of 9
    assert speakers == [record.speaker_id for record in picked]
    assert [entry["n"] for entry in metadata] == [record.metadata["n"] for record in picked]
    expected = np.stack([np.asarray(record.embedding, np.float32) for record in picked])
    assert embeddings.shape == (3, 4) and np.allclose(embeddings.numpy(), expected)

    everything, _, _ = read_embeddings(tmp_path, "val")
    assert everything.shape == (9, 4)


def test_the_disk_full_line_names_the_folder_the_problem_and_the_fix(tmp_path: Path) -> None:
    class Mine(DiskFullError):
        pass

    for code, problem in [
        (errno.ENOSPC, "no space left on the device"),
        (errno.EDQUOT, "over the disk quota"),
        (errno.EFBIG, "the file is larger than the file system allows"),
        (errno.EROFS, "the file system is read-only"),
    ]:
        full = disk_full_error(OSError(code, "x"), tmp_path, "index.json", lambda: "free 2 MB", kind=Mine)
        assert isinstance(full, Mine)
        line = str(full)
        assert line.startswith(f"{tmp_path}: {problem} (") and "MB free) while writing index.json; free 2 MB" in line
        assert "\n" not in line
    called: list[bool] = []
    assert disk_full_error(OSError(errno.EACCES, "x"), tmp_path, "a", lambda: str(called.append(True))) is None
    assert called == []  # the fix is measured only for a disk error


def test_quiet_lightning_keeps_warnings_and_drops_info() -> None:
    from s2f._noise import quiet_lightning

    logger = logging.getLogger("lightning.pytorch")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        quiet_lightning(extra_warnings=())
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
    finally:
        logger.setLevel(before)


def test_a_teacher_by_name_is_built_and_weights_beside_a_built_one_are_refused() -> None:
    from s2f.teachers import FaceTeacher, build_teacher

    teacher = build_teacher("dlib_resnet_tiny")
    assert isinstance(teacher, FaceTeacher) and teacher.name == "dlib_resnet_tiny"
    assert build_teacher(teacher) is teacher
    assert build_teacher(None) is None
    with pytest.raises(ConfigError, match="teacher_weights only applies to a teacher given by name"):
        build_teacher(teacher, "weights.pth")
    with pytest.raises(ConfigError):
        build_teacher(None, "weights.pth")

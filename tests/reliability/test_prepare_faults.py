"""`s2f prepare` against bad numbers and a second run on the same root.

Audio that decodes to NaN and a teacher that returns NaN become reject rows (never garbage rows, never
a stopped run); a second prepare on a root another process is writing refuses with one line, and a
holder killed with SIGKILL leaves nothing behind that blocks the next run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from s2f import TEACHERS
from s2f.prepare import prepare
from s2f.prepare.diskspace import DiskFull
from s2f.prepare.lock import RootLocked
from s2f.prepare.rejects import read_rejects
from s2f.prepare.sources import read_avspeech
from s2f.shards import iter_records, read_manifest

WANTED = ("astro-01_x_1.000_7.500", "hopper_02_10.000_15.000")


@pytest.fixture(scope="module")
def corpus(prepare_corpus: Path) -> Path:
    return prepare_corpus  # shared read-only by every module (conftest.py)


def _tasks(corpus: Path) -> list:
    return [t for t in read_avspeech(corpus / "avspeech.csv", corpus / "videos") if t.clip_id in WANTED]


def _rows(root: Path) -> set[str]:
    return {r.clip_id for split in read_manifest(root).splits for r in iter_records(root, split)}


def test_audio_that_decodes_to_nan_is_a_reject_row(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import s2f.prepare.decode as decode

    real = decode.read_audio

    def read_audio(path, start, seconds):
        samples = real(path, start, seconds)
        if "hopper" in str(path):
            samples = samples.copy()
            samples[100] = np.nan
        return samples

    monkeypatch.setattr(decode, "read_audio", read_audio)
    out = tmp_path / "shards"
    summary = prepare(_tasks(corpus), out, "dlib_resnet", num_workers=0, progress=False)
    reasons = {r.clip_id: (r.reason, r.detail) for r in read_rejects(out / "rejects.jsonl")}
    assert reasons == {WANTED[1]: ("undecodable", reasons[WANTED[1]][1])}
    assert "NaN or infinite" in reasons[WANTED[1]][1] and summary.rejected == {"undecodable": 1}
    assert _rows(out) == {WANTED[0]}


def test_a_teacher_embedding_with_nan_is_a_reject_row_not_a_stopped_run(corpus: Path, tmp_path: Path) -> None:
    teacher = TEACHERS.create("dlib_resnet")
    real = teacher.embed_images

    def embed_images(images: torch.Tensor) -> torch.Tensor:
        embeddings = real(images).clone()
        embeddings[0, 3] = float("nan")  # the first accepted clip of each batch
        return embeddings

    teacher.embed_images = embed_images  # type: ignore[method-assign]
    out = tmp_path / "shards"
    summary = prepare(_tasks(corpus), out, teacher, num_workers=0, progress=False, batch_size=4)
    rejects = read_rejects(out / "rejects.jsonl")
    assert len(rejects) == 1 and rejects[0].reason == "failed" and "NaN/inf" in rejects[0].detail
    assert summary.rejected == {"failed": 1} and len(_rows(out)) == 1


HOLDER = """
import sys, time
from s2f.prepare.lock import hold_root
with hold_root(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow  # two prepare processes: about 6 s
def test_a_second_prepare_on_the_same_root_refuses_until_the_holder_dies(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RootLocked) as error:
            prepare([], out, "dlib_resnet", num_workers=0, progress=False)
        message = str(error.value)
        assert "\n" not in message and str(out) in message and "still running" in message
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # The kernel dropped the dead holder's lock: the next run goes ahead without any clean-up.
    prepare([], out, "dlib_resnet", num_workers=0, progress=False)


def test_other_ranks_of_the_same_run_do_not_take_the_lock(tmp_path: Path, monkeypatch) -> None:
    from s2f.prepare.lock import hold_root

    with hold_root(tmp_path):
        monkeypatch.setenv("LOCAL_RANK", "1")
        with hold_root(tmp_path):  # rank 1 of a Lightning launch writes its own parts into the same root
            pass
        monkeypatch.setenv("LOCAL_RANK", "0")
        with pytest.raises(RootLocked), hold_root(tmp_path):
            pass


def test_a_full_disk_mid_run_is_one_line_and_the_rerun_after_freeing_space_finishes(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    import errno

    import s2f.prepare.engine as engine

    real_write = engine.ShardWriter.write
    writes = []

    def write(self, record):  # type: ignore[no-untyped-def]
        writes.append(record.clip_id)
        if len(writes) == 2:  # the second clip: the first part is committed, the second is being written
            raise OSError(errno.ENOSPC, "No space left on device", str(self.root))
        return real_write(self, record)

    monkeypatch.setattr(engine.ShardWriter, "write", write)
    out = tmp_path / "shards"
    with pytest.raises(DiskFull) as error:
        prepare(_tasks(corpus), out, "dlib_resnet", num_workers=0, progress=False, part_size=1)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{out}: no space left on the device (")
    assert "MB free" in message and "run the same command again" in message
    assert not (out / "s2f_shards.json").exists()  # nothing half-written is visible to readers
    monkeypatch.setattr(engine.ShardWriter, "write", real_write)
    summary = prepare(_tasks(corpus), out, "dlib_resnet", num_workers=0, progress=False, part_size=1)
    assert _rows(out) == set(WANTED) and summary.processed == 1

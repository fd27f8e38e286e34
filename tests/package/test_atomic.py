"""The one write-then-rename of s2f (``s2f._atomic``): a failed write leaves the old file and no
temporary one; writers racing on one target (threads, processes) never leave a torn file."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
from pathlib import Path

import pytest

from s2f._atomic import PARTIAL_PATTERN, atomic_open, atomic_path, partial_path, write_atomically

SIZE = 1 << 20  # large enough that a write takes several system calls


def _payload(writer: int) -> bytes:
    return bytes([writer]) * SIZE


def _is_whole(data: bytes, writers: range) -> bool:
    return len(data) == SIZE and data[0] in writers and data.count(data[0]) == SIZE


def test_a_writer_that_fails_midway_leaves_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    write_atomically(target, "old\n")
    with pytest.raises(RuntimeError, match="midway"), atomic_open(target) as handle:
        handle.write("new, but only half of it")
        handle.flush()
        raise RuntimeError("midway")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["index.json"]


def test_a_library_that_fails_writing_by_name_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.wav"
    with pytest.raises(OSError, match="disk"), atomic_path(target, suffix=".wav") as partial:
        partial.write_bytes(b"RIFF")
        raise OSError(28, "the disk filled")
    assert os.listdir(tmp_path) == []


def test_a_successful_write_replaces_the_target_and_leaves_only_it(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_atomically(target, b"old")
    with atomic_path(target, suffix=".json") as partial:
        assert partial.parent == tmp_path and partial.name.endswith(".partial.json")
        partial.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_temporary_names_differ_per_call_and_carry_the_pid(tmp_path: Path) -> None:
    names = {partial_path(tmp_path / "settings.json").name for _ in range(50)}
    assert len(names) == 50
    for name in names:
        match = re.match(PARTIAL_PATTERN, name)
        assert match is not None and int(match.group(1)) == os.getpid()


def test_a_killed_writers_temporary_file_is_recognised_as_stale(tmp_path: Path) -> None:
    from s2f.train.checkpoint_io import remove_stale_partials  # here: the writer processes need not import torch

    dead = multiprocessing.get_context("fork" if os.name == "posix" else "spawn").Process(target=int)
    dead.start()
    dead.join()
    stale = tmp_path / f".last.ckpt.{dead.pid}-01234567.partial"
    stale.write_bytes(b"half")
    mine = partial_path(tmp_path / "last.ckpt")
    mine.write_bytes(b"being written")
    assert remove_stale_partials(tmp_path) == [stale.name]
    assert sorted(os.listdir(tmp_path)) == [mine.name]


def _write_many(target: str, writer: int, rounds: int) -> None:
    for _ in range(rounds):
        write_atomically(target, _payload(writer))


def _read_while(target: Path, running: threading.Event, writers: range, seen: list[bytes]) -> None:
    while running.is_set():
        with open(target, "rb") as handle:
            data = handle.read()
        if not _is_whole(data, writers):
            seen.append(data[:16])


def test_threads_writing_one_target_at_once_never_leave_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "done.json"
    write_atomically(target, _payload(0))
    writers = range(1, 5)
    torn: list[bytes] = []
    running = threading.Event()
    running.set()
    reader = threading.Thread(target=_read_while, args=(target, running, range(5), torn))
    reader.start()
    threads = [threading.Thread(target=_write_many, args=(str(target), w, 10)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    running.clear()
    reader.join()
    assert torn == []
    assert _is_whole(target.read_bytes(), writers)
    assert os.listdir(tmp_path) == ["done.json"]


def test_processes_writing_one_target_at_once_never_leave_a_torn_file(tmp_path: Path) -> None:
    # As ranks that torchrun starts together write the same settings file of ``s2f prepare``.
    target = tmp_path / "settings.json"
    write_atomically(target, _payload(0))
    writers = range(1, 4)
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    processes = [context.Process(target=_write_many, args=(str(target), w, 30)) for w in writers]
    for process in processes:  # forked before the reader thread exists
        process.start()
    torn: list[bytes] = []
    running = threading.Event()
    running.set()
    reader = threading.Thread(target=_read_while, args=(target, running, range(4), torn))
    reader.start()
    for process in processes:
        process.join(timeout=120)
    running.clear()
    reader.join()
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert torn == []
    assert _is_whole(target.read_bytes(), writers)
    assert os.listdir(tmp_path) == ["settings.json"]

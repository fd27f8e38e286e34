"""A full disk under ``s2f fit`` and ``s2f prepare``: one line naming the folder and the space needed, nothing
half-written left visible, and the rerun after space is freed finishes.

Two ways to fill the disk: ENOSPC injected into the checkpoint writer (runs everywhere), and a real
tmpfs of a few megabytes mounted by the test (needs root and a kernel that lets the container mount;
skipped otherwise, with the reason).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import s2f.train.checkpoint_io as checkpoint_io
from helpers.corpus import records
from helpers.fit import fit_args, weights
from s2f import _atomic
from s2f.cli import main
from s2f.prepare import prepare
from s2f.prepare.diskspace import DiskFull
from s2f.prepare.sources import read_avspeech

EPOCHS, EVERY, STEPS = 1, 2, 8  # 32 training clips in batches of 4: checkpoints at steps 2, 4, 6 and 8


WANTED = ("astro-01_x_1.000_7.500", "hopper_02_10.000_15.000", "two_faces_0.500_6.500")


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


@contextlib.contextmanager
def tiny_disk(folder: Path, kilobytes: int) -> Iterator[Callable[[int], None]]:
    """A tmpfs of ``kilobytes`` mounted at ``folder``; yields a function that resizes it. Skips when it cannot mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the injected-ENOSPC tests cover the same code paths")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "s2f-test", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not let the test mount a tmpfs ({mounted.stderr.strip() or 'mount failed'})")

    def resize(size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}k", str(folder)], check=True, capture_output=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("s2f: error:")]


def _assert_nothing_half_written(folder: Path) -> dict[str, int]:
    """Every ``*.ckpt`` in ``folder`` loads; no partial file is left. Returns each checkpoint's global step."""
    assert not [p.name for p in folder.iterdir() if not p.name.endswith(".ckpt")], list(folder.iterdir())
    return {p.name: weights(p)[0] for p in folder.glob("*.ckpt")}


@pytest.mark.slow  # two s2f fit runs
def test_enospc_while_writing_a_checkpoint_is_one_line_and_the_resumed_run_finishes(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = fit_args(shards, run, epochs=EPOCHS, every=EVERY)
    real_open = open
    opened: list[str] = []

    class HalfWriter:
        """Writes half of what it is given, then fails as a full disk does."""

        def __init__(self, path: Path) -> None:
            self.handle = real_open(path, "wb")

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_at_step_4(path, mode="r", *rest, **keywords):  # type: ignore[no-untyped-def]
        opened.append(Path(path).name)
        if "step=4" in str(path):
            return HalfWriter(path)
        return real_open(path, mode, *rest, **keywords)

    monkeypatch.setattr(_atomic, "open", full_at_step_4, raising=False)  # the one writer of checkpoints
    assert main(["fit", *args]) == 2
    (line,) = _error_lines(capsys)
    folder = run / "checkpoints"
    assert line.startswith(f"s2f: error: {folder}: no space left on the device (")
    assert "epoch=0-step=4.ckpt, which needs 2." in line and "MB" in line and "--ckpt_path last" in line
    assert any(".partial" in name for name in opened)  # it did write through a partial file
    # What the failed write leaves: the checkpoints of step 2, whole, and no partial file.
    assert _assert_nothing_half_written(folder) == {"epoch=0-step=2.ckpt": 2, "last.ckpt": 2}

    monkeypatch.undo()
    assert main(["fit", *args, "--ckpt_path", "last"]) == 0
    steps = _assert_nothing_half_written(folder)
    assert steps["last.ckpt"] == STEPS and sorted(steps.values()) == [2, 4, 6, 8, 8]


def test_a_partial_checkpoint_of_a_killed_writer_is_removed_by_the_next_save(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".last.ckpt.{dead.pid}.partial"
    stale.write_bytes(b"half")
    checkpoint_io.AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


@pytest.mark.slow
def test_fit_on_a_real_tiny_disk_stops_with_one_line_and_finishes_after_space_is_freed(
    shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = tmp_path / "disk"
    # Room for the first checkpoint and last.ckpt (2.5 MB each), the step-4 checkpoint, and not its last.ckpt.
    with tiny_disk(disk, kilobytes=9000) as resize:
        run = disk / "run"
        args = fit_args(shards, run, epochs=EPOCHS, every=EVERY)
        assert main(["fit", *args]) == 2
        (line,) = _error_lines(capsys)
        folder = run / "checkpoints"
        assert line.startswith(f"s2f: error: {folder}: no space left on the device (")
        assert "MB free) while writing the checkpoint " in line and "--ckpt_path last" in line
        steps = _assert_nothing_half_written(folder)
        assert steps["last.ckpt"] in (2, 4) and set(steps.values()) <= {2, 4}

        resize(64_000)  # space is freed
        assert main(["fit", *args, "--ckpt_path", "last"]) == 0
        steps = _assert_nothing_half_written(folder)
        assert steps["last.ckpt"] == STEPS and sorted(set(steps.values())) == [2, 4, 6, 8]


@pytest.fixture(scope="module")
def corpus(prepare_corpus: Path) -> Path:
    return prepare_corpus  # shared read-only by every module (conftest.py)


@pytest.mark.slow
def test_prepare_on_a_real_tiny_disk_stops_with_one_line_and_finishes_after_space_is_freed(
    corpus: Path, tmp_path: Path
) -> None:
    tasks = [t for t in read_avspeech(corpus / "avspeech.csv", corpus / "videos") if t.clip_id in WANTED]
    disk = tmp_path / "disk"
    # Each clip takes about 100 kB of chunks: room for the first part and its bookkeeping, not the second.
    with tiny_disk(disk, kilobytes=260) as resize:
        out = disk / "shards"
        with pytest.raises(DiskFull) as error:
            prepare(tasks, out, "dlib_resnet", num_workers=0, progress=False, part_size=1, batch_size=1)
        message = str(error.value)
        print(message)
        assert "\n" not in message and message.startswith(f"{out}: no space left on the device (")
        assert "MB free" in message and "still to do need" in message
        assert not (out / "s2f_shards.json").exists()  # readers see no root at all, so nothing half-written
        committed = list((out / ".s2f_prepare" / "parts").glob("*/done.json"))
        assert 1 <= len(committed) < len(WANTED)

        resize(4000)  # space is freed
        summary = prepare(tasks, out, "dlib_resnet", num_workers=0, progress=False, part_size=1, batch_size=1)
        assert sorted(records(out)) == sorted(WANTED)
        assert summary.processed == len(WANTED) - len(committed)


def test_a_full_disk_under_the_logger_is_one_line_too(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning.fabric.loggers import csv_logs

    def save(self) -> None:  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", self.metrics_file_path)

    monkeypatch.setattr(csv_logs._ExperimentWriter, "save", save)
    run = tmp_path / "run"
    args = fit_args(shards, run, epochs=EPOCHS, every=EVERY)
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run / "logs")}}
    assert main(["fit", *args, "--trainer.logger", json.dumps(logger), "--trainer.max_steps", "2"]) == 2
    (line,) = _error_lines(capsys)
    assert line.startswith(f"s2f: error: {run / 'logs'}/lightning_logs/version_0: no space left on the device (")
    assert "while writing metrics.csv; free some space there" in line

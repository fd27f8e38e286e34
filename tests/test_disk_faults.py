"""A full disk under ``s2f fit`` and ``s2f prepare``: one line naming the folder and the space needed, nothing
half-written left visible, and the rerun after space is freed finishes.

Two ways to fill the disk: ENOSPC injected into the checkpoint writer (runs everywhere), and a real
tmpfs of a few megabytes mounted by the test (needs root and a kernel that lets the container mount;
skipped otherwise, with the reason).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import s2f.train.checkpoint_io as checkpoint_io
from helpers.fit import fit_args, weights
from s2f.cli import main

EPOCHS, EVERY, STEPS = 1, 2, 8  # 32 training clips in batches of 4: checkpoints at steps 2, 4, 6 and 8


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

    monkeypatch.setattr(checkpoint_io, "open", full_at_step_4, raising=False)
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

"""Checkpoints that are either whole or absent, and a full disk that is one line.

Lightning's own writer (``TorchCheckpointIO``) writes a local checkpoint to a temporary file in the
system's temporary folder and then *moves* it. When that folder is on another file system (a
``tmpfs`` ``/tmp``, a scratch or network disk for the run), the move is a copy that truncates the
target first: a disk that fills up during the copy leaves a half-written ``last.ckpt`` in place of
the good one, and ``--ckpt_path last`` then fails to load it.

:class:`AtomicCheckpointIO` writes next to the target instead, to a hidden ``.NAME.PID.partial`` file
(no ``.ckpt`` suffix, so Lightning never takes it for a checkpoint), ``fsync`` s it and renames it
over the target: a reader sees the old checkpoint or the new one, never part of one. A disk that is
full, over quota or read-only becomes :class:`CheckpointDiskFull`, one line naming the folder, the
free space and the checkpoint's size; the partial file is removed, and every checkpoint written
before stays intact, so the run resumes with ``--ckpt_path last`` once space is freed. Partial files
of a process that was killed mid-write are removed by the next save into the same folder.

``s2f fit`` installs it (:mod:`s2f.train.lightning_cli`) whenever the strategy uses Lightning's plain
``TorchCheckpointIO``; remote paths (``s3://``) go through Lightning's writer unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from s2f.errors import S2FError

__all__ = ["AtomicCheckpointIO", "CheckpointDiskFull", "disk_full_error", "install_atomic_checkpoints"]

_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "over the disk quota",
    errno.EROFS: "the file system is read-only",
}
_PARTIAL = re.compile(r"^\..+\.(\d+)\.partial$")


class CheckpointDiskFull(S2FError):
    """A checkpoint (or another file of a run: logs, the saved config) could not be written: no space,
    over quota, or a read-only folder."""


def _megabytes(count: float) -> str:
    return f"{count / 1e6:,.1f} MB"


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(folder: Path) -> list[str]:
    """Deletes ``.NAME.PID.partial`` files in ``folder`` whose writer is no longer running; returns their names."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    return removed


def write_atomically(data: bytes | memoryview, target: Path) -> None:
    """Writes ``data`` to ``target`` through a hidden partial file in the same folder, then renames it.

    Raises:
        CheckpointDiskFull: When the folder's disk is full, over quota or read-only (the partial file is removed).
    """
    folder = target.parent
    partial = folder / f".{target.name}.{os.getpid()}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not reach the disk before the bytes do
        os.replace(partial, target)
        _sync_folder(folder)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink()
        problem = _DISK_ERRORS.get(err.errno or 0)
        if problem is None:
            raise
        raise CheckpointDiskFull(_disk_full_message(folder, target.name, len(data), problem)) from None


def _sync_folder(folder: Path) -> None:
    # The rename itself reaches the disk with the folder's entry; best effort where folders cannot be opened.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _disk_full_message(folder: Path, name: str, size: int, problem: str) -> str:
    try:
        free = f"{_megabytes(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return (
        f"{folder}: {problem} ({free}) while writing the checkpoint {name}, which needs {_megabytes(size)}; "
        f"free at least {_megabytes(size)} there (or give the checkpoints another folder), then resume with "
        "the same command and --ckpt_path last: the checkpoints written before are intact"
    )


def disk_full_error(err: OSError) -> CheckpointDiskFull | None:
    """The one line for a full disk met anywhere else in a run (a logger's file, the saved config), or None.

    Lightning's loggers write in place, so the file named may be cut short; the checkpoints are not.
    """
    problem = _DISK_ERRORS.get(err.errno or 0)
    if problem is None:
        return None
    path = Path(os.fsdecode(err.filename)) if err.filename else None
    folder = path.parent if path is not None else Path.cwd()
    try:
        free = f"{_megabytes(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return CheckpointDiskFull(
        f"{folder}: {problem} ({free}) while writing {path.name if path else 'a file of the run'}; free some space "
        "there, then resume with the same command and --ckpt_path last: the checkpoints written before are intact"
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with local checkpoints written atomically next to their target."""

    def __init__(self) -> None:
        super().__init__()
        self._swept: set[Path] = set()

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        text = os.fspath(path)
        if not _is_local(text):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options")
        target = Path(text.removeprefix("file://"))
        if target.parent not in self._swept:
            remove_stale_partials(target.parent)
            self._swept.add(target.parent)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with buffer.getbuffer() as view:  # no second copy of a large checkpoint
            write_atomically(view, target)


def install_atomic_checkpoints(trainer: Any) -> bool:
    """Gives ``trainer``'s strategy an :class:`AtomicCheckpointIO` if it uses the plain ``TorchCheckpointIO``.

    Strategies with their own writers (DeepSpeed, FSDP's sharded checkpoints, an asynchronous or a
    user-given ``CheckpointIO``) are left alone. Returns whether it was installed.
    """
    strategy = getattr(trainer, "strategy", None)
    if strategy is None or type(getattr(strategy, "checkpoint_io", None)) is not TorchCheckpointIO:
        return False
    strategy.checkpoint_io = AtomicCheckpointIO()
    return True

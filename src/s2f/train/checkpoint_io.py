"""Checkpoints that are either whole or absent, and a full disk that is one line.

Lightning's own writer (``TorchCheckpointIO``) writes a local checkpoint to a temporary file in the
system's temporary folder and then *moves* it. When that folder is on another file system (a
``tmpfs`` ``/tmp``, a scratch or network disk for the run), the move is a copy that truncates the
target first: a disk that fills up during the copy leaves a half-written ``last.ckpt`` in place of
the good one, and ``--ckpt_path last`` then fails to load it.

:class:`AtomicCheckpointIO` writes next to the target instead, to a hidden ``.NAME.PID-RANDOM.partial`` file
(:mod:`s2f._atomic`; no ``.ckpt`` suffix, so Lightning never takes it for a checkpoint), ``fsync`` s it and renames it
over the target: a reader sees the old checkpoint or the new one, never part of one. A disk that is
full, over quota or read-only becomes :class:`CheckpointDiskFull`, one line naming the folder, the
free space and the checkpoint's size; the partial file is removed, and every checkpoint written
before stays intact, so the run resumes with ``--ckpt_path last`` once space is freed. Partial files
of a process that was killed mid-write are removed by the next save into the same folder.

``s2f fit`` installs it (:mod:`s2f.train.lightning_cli`) whenever the strategy uses Lightning's plain
``TorchCheckpointIO``; remote paths (``s3://``) go through Lightning's writer unchanged.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from s2f import _atomic
from s2f.errors import DiskFullError, megabytes
from s2f.errors import disk_full_error as _disk_full_error

__all__ = ["AtomicCheckpointIO", "CheckpointDiskFull", "disk_full_error", "install_atomic_checkpoints"]

_PARTIAL = re.compile(_atomic.PARTIAL_PATTERN)


class CheckpointDiskFull(DiskFullError):
    """A checkpoint (or another file of a run: logs, the saved config) could not be written: no space,
    over quota, or a read-only folder."""


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
    """Deletes temporary files of :mod:`s2f._atomic` in ``folder`` whose writer is no longer running; returns
    their names."""
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
    """Writes ``data`` to ``target`` through a hidden partial file in the same folder (:mod:`s2f._atomic`).

    Raises:
        CheckpointDiskFull: When the folder's disk is full, over quota or read-only (the partial file is removed).
    """
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic.write_atomically(target, data)
    except OSError as err:
        size = megabytes(len(data))
        fix = (
            f"free at least {size} there (or give the checkpoints another folder), then resume with the same "
            "command and --ckpt_path last: the checkpoints written before are intact"
        )
        full = _disk_full_error(
            err, folder, f"the checkpoint {target.name}, which needs {size}", fix, CheckpointDiskFull
        )
        if full is None:
            raise
        raise full from None


def disk_full_error(err: OSError) -> DiskFullError | None:
    """The one line for a full disk met anywhere else in a run (a logger's file, the saved config), or None.

    Lightning's loggers write in place, so the file named may be cut short; the checkpoints are not.
    """
    path = Path(os.fsdecode(err.filename)) if err.filename else None
    fix = (
        "free some space there, then resume with the same command and --ckpt_path last: the checkpoints "
        "written before are intact"
    )
    writing = path.name if path else "a file of the run"
    return _disk_full_error(err, path.parent if path else Path.cwd(), writing, fix, CheckpointDiskFull)


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

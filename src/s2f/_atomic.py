"""Files that are either whole or absent: the one write-then-rename of s2f.

Every writer of a file that a reader may open while it is written, or that a crash may interrupt
(checkpoints, shard manifests and indexes, ``prepare``'s commit records, rejects, generated media),
writes to a hidden temporary file in the target's own folder and renames it over the target. The
rename is atomic within one file system, so a reader sees the old content or the new, never part of
either. Before the rename the bytes are ``fsync`` ed (otherwise a machine crash can leave the new
name pointing at an empty file), and after it the folder is, where the platform can open a folder,
so the rename itself survives.

The temporary name, ``.NAME.PID-RANDOM.partial[SUFFIX]``, is unique per process *and* per call: ranks
that a launcher starts together (``torchrun``) write the same file at once, and a shared temporary
name let one rank's rename take another's half-written file. A write that fails removes its temporary
file; one left by a killed process carries its pid, so a later writer can tell it is stale
(:func:`s2f.train.checkpoint_io.remove_stale_partials`).

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "settings.json")
    >>> write_atomically(target, '{"seed": 0}\\n')
    >>> open(target).read(), os.listdir(folder)
    ('{"seed": 0}\\n', ['settings.json'])
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["PARTIAL_PATTERN", "atomic_open", "atomic_path", "partial_path", "write_atomically"]

PARTIAL_PATTERN = r"^\..+\.(\d+)(?:-[0-9a-f]{8})?\.partial(?:\.\w+)?$"
"""Matches a temporary file of :func:`partial_path`; group 1 is the writer's pid (an older name without
the random part matches too)."""


def partial_path(target: str | os.PathLike[str], suffix: str = "") -> Path:
    """A hidden temporary name beside ``target``, unique to this process and this call.

    ``suffix`` is appended for libraries that choose a format by the file's ending.

    Example:
        >>> import re
        >>> name = partial_path("/data/index.json").name
        >>> bool(re.match(PARTIAL_PATTERN, name)), name.startswith(".index.json.")
        (True, True)
    """
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{suffix}")


def _sync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    # The rename reaches the disk with the folder's entry; best effort where a folder cannot be opened (Windows).
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """A temporary path to write by name (for libraries that take a path); renamed over ``target`` after the block.

    If the block raises, the temporary file is removed and ``target`` is left as it was.

    Args:
        target: The file to replace; its folder must exist.
        suffix: Ending of the temporary name (``".mp4"``) for writers that pick the format from it.
        durable: ``fsync`` the file before and the folder after the rename. ``False`` keeps only the
            whole-or-absent guarantee, for many small files that are cheap to make again.
    """
    target = Path(target)
    partial = partial_path(target, suffix)
    try:
        yield partial
        if durable:
            _sync_file(partial)  # the rename must not reach the disk before the bytes do
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    if durable:
        _sync_folder(target.parent)


@contextlib.contextmanager
def atomic_open(
    target: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """An open temporary file (``"w"`` or ``"wb"``) that becomes ``target``, fsync'ed, when the block ends well.

    Text mode defaults to UTF-8.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file ('w' or 'wb'), not mode {mode!r}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    # The handle fsyncs itself (cheaper than reopening the file), so atomic_path need not.
    with (
        atomic_path(target, durable=False) as partial,
        open(partial, mode, encoding=encoding, newline=newline) as handle,
    ):
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
    _sync_folder(Path(target).parent)


def write_atomically(target: str | os.PathLike[str], data: bytes | memoryview | str) -> None:
    """Writes ``data`` (text as UTF-8) to ``target`` through :func:`atomic_open`."""
    if isinstance(data, str):
        with atomic_open(target, "w") as handle:
            handle.write(data)
    else:
        with atomic_open(target, "wb") as handle:
            handle.write(data)

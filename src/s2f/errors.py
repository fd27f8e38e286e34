"""Errors that s2f raises for bad input.

Each one carries a single line that names the offending file or value and says how to fix it;
the CLI prints that line instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable

__all__ = [
    "AudioError",
    "ConfigError",
    "DiskFullError",
    "MediaError",
    "MissingExtraError",
    "S2FError",
    "ShardFormatError",
    "WeightsError",
    "disk_full_error",
    "first_line",
]


class S2FError(Exception):
    """Base class of the errors s2f raises for bad input (not for its own bugs)."""


class AudioError(S2FError, ValueError):
    """An audio input is missing, unreadable, empty or silent."""


class WeightsError(S2FError, ValueError):
    """A weights file is missing, unsafe, or does not match the model it should fill."""


class ShardFormatError(S2FError, ValueError):
    """A shard directory is missing, malformed, or written by an incompatible s2f version."""


class ConfigError(S2FError, ValueError):
    """A saved model or recipe is incomplete or inconsistent."""


class MissingExtraError(S2FError, ImportError):
    """A command or model needs an optional extra that is not installed; the message says how to install it.

    An ``ImportError`` too, so code that falls back when an optional package is missing keeps doing so.
    """


class MediaError(S2FError):
    """A video or audio clip that ``s2f prepare`` cannot use.

    ``reason`` is its reject code (see :mod:`s2f.prepare.rejects`) and ``detail`` one line about the
    file; prepare records both in ``rejects.jsonl`` and goes on with the next clip.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DiskFullError(S2FError):
    """A file could not be written: no space, over quota, larger than the file system allows, or read-only."""


_DISK_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "over the disk quota",
    errno.EFBIG: "the file is larger than the file system allows",
    errno.EROFS: "the file system is read-only",
}


def megabytes(count: float) -> str:
    """A byte count as MB, one decimal below 10 MB.

    Example:
        >>> megabytes(2_500_000), megabytes(123_456_789)
        ('2.5 MB', '123 MB')
    """
    return f"{count / 1e6:,.0f} MB" if count >= 10e6 else f"{count / 1e6:.1f} MB"


def disk_full_error(
    err: OSError,
    folder: str | os.PathLike[str],
    writing: str,
    fix: str | Callable[[], str],
    kind: type[DiskFullError] = DiskFullError,
) -> DiskFullError | None:
    """The one line for an ``OSError`` that a full disk causes (``kind``), or None for any other error.

    The line names ``folder``, what went wrong and the space free there, what was being written and
    the fix; ``fix`` may be a function, called only for a disk error (measuring the need can cost).

    Example:
        >>> line = disk_full_error(OSError(errno.ENOSPC, "full"), "/", "the index", "free some space")
        >>> str(line).startswith("/: no space left on the device ("), str(line).endswith("; free some space")
        (True, True)
        >>> disk_full_error(OSError(errno.ENOENT, "gone"), "/", "the index", "free some space") is None
        True
    """
    problem = _DISK_PROBLEMS.get(err.errno or 0)
    if problem is None:
        return None
    try:
        free = f"{megabytes(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return kind(f"{folder}: {problem} ({free}) while writing {writing}; {fix() if callable(fix) else fix}")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-blank line of an exception's message (at most ``limit`` characters), or its type's name:
    the part of a library's error that fits in s2f's one-line messages."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__

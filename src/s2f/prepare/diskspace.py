"""A full disk (or a read-only, over-quota output folder) during ``s2f prepare``: one line, and a clean rerun.

Parts are committed one at a time (``done.json`` last), so a write that fails leaves at most one
uncommitted part folder, which readers never see and the next run removes. What the user needs is
the folder, how much space is free, and roughly how much the rest of the run needs: measured from
the bytes the committed parts already take per clip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from s2f.errors import DiskFullError, disk_full_error, megabytes

__all__ = ["DiskFull", "naming_the_folder_when_the_disk_is_full"]


class DiskFull(DiskFullError):
    """``s2f prepare`` could not write its output folder: no space, over quota, or read-only."""


def _bytes_under(folder: Path) -> int:
    total = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(directory, name))
    return total


def _need(root: Path, committed_clips: int, pending_clips: int) -> str:
    if committed_clips == 0 or pending_clips == 0:
        return "free some space"
    per_clip = _bytes_under(root) / committed_clips
    return (
        f"the {pending_clips} clip{'s' if pending_clips != 1 else ''} still to do "
        f"need{'' if pending_clips != 1 else 's'} about {megabytes(per_clip * pending_clips)} "
        f"({per_clip / 1e3:,.0f} kB a clip so far)"
    )


def _accounted_clips(root: Path) -> int:
    from .parts import PartStore

    try:
        return sum(len(part.clip_ids) for part in PartStore(root).done_parts())
    except (OSError, ValueError, KeyError):
        return 0


@contextlib.contextmanager
def naming_the_folder_when_the_disk_is_full(root: Path, committed_clips: int, pending_clips: int) -> Iterator[None]:
    """Turns a disk-full, over-quota or read-only ``OSError`` inside the block into one :class:`DiskFull` line."""
    try:
        yield
    except OSError as err:

        def fix() -> str:
            # Parts this run committed before the disk filled count too: they measure the space a clip takes.
            done_now = _accounted_clips(root)
            more = max(0, done_now - committed_clips)
            need = _need(root, max(committed_clips, done_now), max(0, pending_clips - more))
            return f"{need}, then run the same command again: committed parts are kept, the unfinished one is redone"

        full = disk_full_error(err, root, f"{err.filename or 'the shards'}", fix, kind=DiskFull)
        if full is None:
            raise
        raise full from None

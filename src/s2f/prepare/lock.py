"""One ``s2f prepare`` at a time per shard root: an advisory lock that dies with the process holding it.

The lock is ``fcntl.flock`` on the root folder itself: the kernel drops it when its holder exits,
however it exits (SIGKILL included), so a dead run never blocks the next one and no stale-lock
clean-up is needed; and no lock file is written, so a run with nothing to do changes nothing on disk.
Only the process a launcher made rank 0 (or a process without a launcher) takes it: the other ranks
of the same run write their own parts into the same root by design. flock is local to one machine
(and unreliable on some network file systems): two machines preparing into one shared root are not
stopped by it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from s2f.errors import S2FError

__all__ = ["RootLocked", "hold_root"]


class RootLocked(S2FError):
    """Another ``s2f prepare`` is writing the same shard root."""


def _is_first_rank() -> bool:
    # torchrun and SLURM set RANK / SLURM_PROCID; Lightning's own launcher starts the other local ranks
    # with LOCAL_RANK set before any Trainer exists.
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) != 0:
            return False
    return True


@contextlib.contextmanager
def hold_root(root: str | os.PathLike[str]) -> Iterator[None]:
    """Holds the root's prepare lock for the ``with`` block; refuses at once if another process holds it.

    Raises:
        RootLocked: One line naming the root and the process that holds it.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one run at a time is then the user's to keep
        yield
        return
    if not _is_first_rank():
        yield
        return
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RootLocked(
                f"{folder} is being written by another s2f prepare that is still running; wait for it to finish "
                "(or stop it), or give another --out"
            ) from None
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock

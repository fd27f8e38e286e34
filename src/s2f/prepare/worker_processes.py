"""How s2f starts worker processes: never by forking a process that may be running threads.

``fork`` copies a process with only the calling thread; a lock that another thread held at that
moment (Weights & Biases' event loop, tqdm's monitor, a decoder's pool, a library's logging) stays
locked for ever in the child, which then hangs on first use. A long Python process that has trained,
logged and prepared before it starts workers (a test session, a notebook, ``s2f demo``) has such
threads, and a ``prepare`` DataLoader worker was once seen to hang on a 2-core host for 15 minutes this
way. Python 3.12 warns about it and 3.14 stopped forking by default.

Workers here therefore start from a *fork server*: a small process started once, before any of the
parent's threads can reach it, which imports torch and the worker modules (``PRELOAD``) and then forks
each worker from its own single thread, so workers start in milliseconds without inheriting a lock.
Where the platform has no fork server (Windows), they are spawned. Whatever a worker needs therefore
reaches it by pickling, never by inheritance.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

# What the fork server imports once, so that each worker forked from it need not (about 2 s each).
PRELOAD = ("torch", "numpy", "s2f.prepare.engine", "s2f.synth.world")


def worker_context() -> BaseContext:
    """The start method for s2f's worker processes (DataLoader workers, process pools)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Takes effect when the server starts (the first worker of this process); later calls are no-ops.
        context.set_forkserver_preload(list(PRELOAD))
        return context
    return multiprocessing.get_context("spawn")

"""s2f's workers never inherit a lock that another thread of the parent held when they started."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from helpers import held_lock
from s2f.prepare.worker_processes import worker_context


def _take_in_a_worker(context) -> bool:  # type: ignore[no-untyped-def]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another thread of this process, inside a library's lock when the worker starts
        with held_lock.LOCK:
            held.set()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    try:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            return pool.submit(held_lock.take_and_release).result(timeout=60)
    finally:
        release.set()
        thread.join()


def test_a_worker_starts_without_the_parents_held_locks() -> None:
    assert _take_in_a_worker(worker_context())


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the hazard being shown, and Linux's default")
def test_a_forked_worker_would_inherit_them() -> None:
    import multiprocessing

    # What the test above guards against: a forked child finds the lock taken for ever.
    assert not _take_in_a_worker(multiprocessing.get_context("fork"))

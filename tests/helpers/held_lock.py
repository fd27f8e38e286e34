"""A module-level lock, as libraries keep them (logging, event loops), for the worker start-method test."""

from __future__ import annotations

import threading

LOCK = threading.Lock()


def take_and_release() -> bool:
    """Takes the lock in a worker: True when it is free there, False after a second's wait."""
    if LOCK.acquire(timeout=1.0):
        LOCK.release()
        return True
    return False

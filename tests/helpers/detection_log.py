"""A face detector that writes where each of its calls ran, for tests of where ``s2f prepare`` detects.

Workers start from a fork server (:mod:`s2f.prepare.worker_processes`), so a patch of the test process never reaches
them; this detector does, pickled inside the dataset with the log file it was given when it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import get_worker_info

from s2f.vision.detection import FaceDetector

__all__ = ["LoggingDetector", "calls"]

# The log a LoggingDetector made now writes to (set by the test before each run).
LOG: list[Path] = []


class LoggingDetector(FaceDetector):
    """:class:`FaceDetector` that appends ``worker|main THREADS`` to its log on every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = LOG[-1]

    def detect(self, images, min_face_size=None):  # type: ignore[no-untyped-def]
        where = "worker" if get_worker_info() is not None else "main"
        with open(self.log, "a") as handle:
            handle.write(f"{where} {torch.get_num_threads()}\n")
        return super().detect(images, min_face_size)


def calls(log: Path) -> list[tuple[str, int]]:
    """The (where, torch threads) of every call logged to ``log``."""
    return [(where, int(threads)) for where, threads in (line.split() for line in log.read_text().splitlines())]

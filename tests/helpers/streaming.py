"""An S3-compatible server in a process of its own, and a per-step journal that survives a killed run.

``MotoServerProcess`` starts moto's server (``python -m moto.server``) on a loopback port and stops it;
what a test uploads to it lives in that process's memory, and ranks reach it over HTTP like any object
store. ``StepJournal`` is :class:`helpers.nodes.ClipRecorder` that also appends every finished step to
``DIR/rank{N}.steps.jsonl`` as it ends, so a run killed with SIGKILL still leaves the clips and losses of
the steps it took (``ClipRecorder`` writes only when training ends).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import lightning as L

from helpers.nodes import ClipRecorder

__all__ = ["MotoServerProcess", "StepJournal", "free_port", "read_journal", "upload_tree"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoServerProcess:
    """moto's S3 server as a child process on ``127.0.0.1``; a context manager that yields its endpoint URL.

    Args:
        log: File the server's output goes to.
        ready_seconds: How long to wait for the server to answer before giving up.
    """

    def __init__(self, log: Path, ready_seconds: float = 60.0) -> None:
        self.log = log
        self.ready_seconds = ready_seconds
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_seconds
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"moto's server did not start on {self.endpoint}: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return self.endpoint

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def upload_tree(root: Path, bucket: str, prefix: str) -> int:
    """Uploads every file under ``root`` to ``s3://bucket/prefix/...`` (boto3, the ``AWS_*`` settings); the count."""
    import boto3

    client = boto3.client("s3")
    files = sorted(path for path in root.rglob("*") if path.is_file())
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
    return len(files)


class StepJournal(ClipRecorder):
    """:class:`ClipRecorder` that also appends each finished step (epoch, step, clips, loss) to ``rank{N}.steps.jsonl``.

    Args:
        out_dir: The folder every rank writes into.
        step_seconds: Seconds to wait after each step (after the line is written).
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.record["steps"][-1]["loss"] = float(outputs["loss"])
        with open(Path(self.out_dir, f"rank{trainer.global_rank}.steps.jsonl"), "a", encoding="utf-8") as journal:
            journal.write(json.dumps(self.record["steps"][-1]) + "\n")
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The steps a :class:`StepJournal` wrote to ``path``, in order (a line cut short by a kill is left out)."""
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            steps.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return steps

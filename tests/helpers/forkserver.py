"""Runs ``s2f`` commands as forked children of one process that has already imported s2f and Lightning.

A test that starts ``s2f fit`` many times (to kill it at many instants) would otherwise pay Python's
import of torch, Lightning and s2f on every start: 10-20 s on the 2-core CI machine, most of the
test's time. The server imports them once, runs no torch operation (so forking is safe), and forks
one child per command; the child runs :func:`s2f.cli.main` with the command's arguments, exactly
what the ``s2f`` console script runs, with its output sent to a log file, and exits with its status.
Everything a child keeps is what it wrote to disk, so killing it is killing ``s2f fit``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["ForkServer"]

ROOT = Path(__file__).resolve().parents[2]

_SERVER = r"""
import json, os, sys
import s2f.cli, s2f.train, s2f.train.lightning_cli, lightning.pytorch.cli  # what `s2f fit` imports
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdin.close()
        try:
            code = s2f.cli.main(request["argv"])
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class ForkServer:
    """One server process; :meth:`start` forks a command, :meth:`wait` returns its exit status (``-9``: killed)."""

    def __init__(self) -> None:
        path = os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._read() == "ready"
        self.pid: int | None = None

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the fork server died (status {self.process.poll()})"
        return line.strip()

    def start(self, argv: list[str], log: Path) -> int:
        """Forks ``s2f ARGV`` (output appended to ``log``); returns the child's pid."""
        assert self.pid is None, "one command at a time"
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        self.process.stdin.flush()
        self.pid = int(self._read())
        return self.pid

    def alive(self) -> bool:
        """Whether the running command has not exited yet (its status is then pending on the server's pipe)."""
        return self.pid is not None and os.path.exists(f"/proc/{self.pid}") and not _is_zombie(self.pid)

    def kill(self) -> int:
        """SIGKILLs the running command; returns its exit status."""
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):  # it exited on its own a moment ago
            os.kill(self.pid, signal.SIGKILL)
        return self.wait()

    def wait(self) -> int:
        """Waits for the running command to exit; returns its exit status."""
        status = int(self._read())
        self.pid = None
        return status

    def close(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

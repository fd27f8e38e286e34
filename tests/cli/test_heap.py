"""The command's allocator setting: freed blocks of a training step's size are reused, not faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s2f.cli import heap

# Rounds of three 40 MB tensors allocated, written and freed, as a training step's temporaries are; prints the
# page faults of every round after the first (in which the heap grows to hold them). Above 32 MB, the most
# glibc's own threshold ever rises to, so that its defaults map them afresh every time: with blocks of a few
# MB whether glibc reuses them depends on where earlier blocks landed, and varies from run to run.
ROUNDS = """
import json, resource, sys, torch
from s2f.cli.heap import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "apply" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(4):
    before = faults()
    for _ in range(5):
        blocks = [torch.ones(10_000_000) for _ in range(3)]
        del blocks
    counts.append(faults() - before)
child = None
if len(sys.argv) > 2:  # the same rounds in a process this one starts, which does not call reuse_freed_memory
    out = __import__("subprocess").run([sys.executable, "-c", sys.argv[2], "inherit"], capture_output=True, text=True)
    child = json.loads(out.stdout)["faults"]
print(json.dumps({"applied": applied, "faults": counts[1:], "child": child}))
"""
PAGES_TOUCHED = 5 * 3 * 40_000_000 // 4096  # per round


def _rounds(mode: str, *, env: dict[str, str] | None = None, child: bool = False) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "S2F_DEFAULT_MALLOC"}
    command = [sys.executable, "-c", ROUNDS, mode, *([ROUNDS] if child else [])]
    done = subprocess.run(command, env={**clean, **(env or {})}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


glibc = pytest.mark.skipif(heap.platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")


@glibc
def test_freed_blocks_are_reused_and_children_inherit_it() -> None:
    result = _rounds("apply", child=True)
    assert result["applied"] is True
    # Under 2 % of the pages written take a fault once the heap holds the blocks, in the process and its child.
    assert max(result["faults"]) < 0.02 * PAGES_TOUCHED, result
    assert max(result["child"]) < 0.02 * PAGES_TOUCHED, result


@glibc
def test_without_it_the_same_rounds_fault_their_pages_in_again() -> None:
    """The twin of the test above: glibc's defaults hand the blocks back, so that test can fail."""
    if Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().startswith("[always]"):
        pytest.skip("huge pages everywhere: each fault maps 2 MB, so few faults either way")
    assert min(_rounds("leave")["faults"]) > 0.2 * PAGES_TOUCHED


@glibc
@pytest.mark.parametrize("owner", [{"S2F_DEFAULT_MALLOC": "1"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_the_owners_setting_is_left_alone(owner: dict[str, str]) -> None:
    result = _rounds("apply", env=owner)
    assert result["applied"] is False


def test_nothing_is_done_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    before = dict(os.environ)
    assert heap.reuse_freed_memory() is False
    assert dict(os.environ) == before

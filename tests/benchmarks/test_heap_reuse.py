"""The allocator benchmark: each setting in its own process, applied only where asked, the same loss under both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.scripts import benchmark_module
from s2f.cli import heap


@pytest.mark.skipif(heap.platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_both_settings_compute_the_same_loss_and_only_one_is_applied(tmp_path: Path) -> None:
    out = tmp_path / "heap.json"
    with benchmark_module("heap_reuse") as bench:
        result = bench.main(["--rounds", "1", "--steps", "2", "--batch-size", "4", "--json", str(out)])
    assert result["same"] is True
    (round_,) = json.loads(out.read_text())["rounds"]
    defaults, ours = (round_[setting] for setting in ("glibc defaults", "s2f's setting"))
    assert (defaults["applied"], ours["applied"]) == (False, True)
    # Whether glibc's defaults reuse a step's blocks varies from run to run: tests/cli/test_heap.py pins that down.

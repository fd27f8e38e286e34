"""The allocator benchmark: each setting in its own process, the same loss under both, glibc's defaults fault more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.scripts import benchmark_module
from s2f.cli import heap


@pytest.mark.skipif(heap.platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_both_settings_compute_the_same_loss_and_only_one_keeps_its_blocks(tmp_path: Path) -> None:
    out = tmp_path / "heap.json"
    with benchmark_module("heap_reuse") as bench:
        result = bench.main(["--rounds", "1", "--steps", "2", "--batch-size", "4", "--json", str(out)])
    assert result["same"] is True
    (round_,) = json.loads(out.read_text())["rounds"]
    defaults, ours = (round_[setting] for setting in ("glibc defaults", "s2f's setting"))
    assert (defaults["applied"], ours["applied"]) == (False, True)
    if not Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().startswith("[always]"):
        assert ours["page_faults_per_step"] < 0.5 * defaults["page_faults_per_step"], round_

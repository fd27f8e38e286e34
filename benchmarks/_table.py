"""What every benchmark prints: its results as an aligned table, and the machine they were measured on.

Benchmarks are scripts run from ``benchmarks/`` (``python benchmarks/NAME.py``), so they import this
module by its bare name.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

__all__ = ["format_table", "load_average", "machine"]


def machine() -> dict[str, object]:
    """What the figures were measured on, so that a table never travels without it."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):  # Linux only; elsewhere the platform module's name will do
        first_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        cpuinfo = {
            key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first_cpu.splitlines())
        }
        model = cpuinfo.get("model name", model)
        flags = set(cpuinfo.get("flags", "").split())
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_isa": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": load_average(),
    }


def load_average() -> float:
    """The 1-minute load average (NaN where unknown): work outside this process on shared cores shows only here."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def format_table(rows: Sequence[object], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table with aligned columns of ``(title, key, format)``; "-" where a value is None.

    A row is an object (``key`` names an attribute) or a mapping (``key`` names an item). The first
    column is left-aligned, as labels read best; numbers are right-aligned.

    Example:
        >>> columns = [("stage", "stage", "{}"), ("ms/call", "ms", "{:.1f}")]
        >>> print(format_table([{"stage": "decode", "ms": 1.5}], columns))
        stage   ms/call
        ------  -------
        decode      1.5
    """
    header = [title for title, _, _ in columns]
    body = [[_cell(row, key, fmt) for _, key, fmt in columns] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = [
        "  ".join(
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()
        for cells in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(row: object, key: str, fmt: str) -> str:
    value = row.get(key) if isinstance(row, Mapping) else getattr(row, key)
    return "-" if value is None else fmt.format(value)

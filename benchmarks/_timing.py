"""Timing pieces the benchmarks share: a device sync, one timed call, autocast by Lightning's precision
name, and the dense-matmul ceiling every MFU figure is held to (measured in the same run)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

__all__ = ["CLOCKS", "PRECISIONS", "autocast", "matmul_tflops", "sync", "timed"]

PRECISIONS = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}
# wall: seconds as a user waits; cpu: the process's CPU seconds, which leave out the time it waited
# for a core on a shared machine (with OMP_NUM_THREADS=1, per core).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def sync(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA runs asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds one call of ``fn`` takes on ``device``, by ``clock``."""
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the precision's dtype on ``device``; nothing for ``32-true``."""
    if precision == "32-true":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def matmul_tflops(
    device: torch.device,
    dtype: torch.dtype,
    size: int,
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best TFLOP/s of square ``size`` matmuls in ``dtype`` on ``device``: the run's ceiling."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    torch.mm(a, b)
    return 2 * size**3 / min(timed(lambda: torch.mm(a, b), device, clock) for _ in range(repeats)) / 1e12

"""Train-step throughput of the voice encoders, and how close it comes to this machine's matmul speed.

Each requested encoder runs a training step on 6 s clips -- forward on the spectrogram, the
normalised L2 loss against random targets, backward, an Adam step with the paper's settings --
in fp32 and in bf16 autocast (channels-last). Samples/s alone says little across machines, so
the step's FLOPs (counted once with ``FlopCounterMode``) turn it into achieved FLOP/s, which is
divided by the dense matmul FLOP/s measured in the same run and dtype: an MFU-like ratio that
shows how much headroom the convolutions leave. The STFT front end runs in the training step
too, but outside the encoder and always in fp32, so its cost is timed apart, per sample.

Every figure is the best of its repeats (steps, matmuls, front-end calls): other work sharing
the cores only ever slows a run down, so the fastest repeat is the one closest to the machine's
own speed, and the ratio compares best with best. The JSON keeps every step time.

Usage:
    python benchmarks/encoder_throughput.py [--quick] [--models s2f_cnn_tiny,s2f_cnn]
        [--dtypes fp32,bf16] [--batch-size N] [--steps N] [--warmup N] [--matmul-size N] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from _table import format_table, load_average, machine
from s2f import ENCODERS
from s2f.audio import SAMPLE_RATE, SpectrogramFrontend
from s2f.train.losses import normalized_l2

__all__ = [
    "Row",
    "benchmark_model",
    "count_flops",
    "main",
    "matmul_tflops",
    "time_frontend",
    "time_train_step",
]

CLIP_SECONDS = 6.0
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Per-model defaults (batch, warm-up steps, timed steps): the full model takes seconds a step on a CPU.
DEFAULTS = {"s2f_cnn_tiny": (8, 2, 5), "s2f_cnn": (2, 1, 3)}
FALLBACK = (2, 1, 3)
QUICK = (2, 1, 1)
COLUMNS = (
    ("model", "model", "{}"),
    ("params M", "params_m", "{:.1f}"),
    ("dtype", "dtype", "{}"),
    ("batch", "batch", "{}"),
    ("samples/s", "samples_per_s", "{:.3g}"),
    ("GFLOP/sample fwd", "gflop_fwd", "{:.3g}"),
    ("GFLOP/sample train", "gflop_train", "{:.3g}"),
    ("achieved TFLOP/s", "achieved_tflops", "{:.3f}"),
    ("matmul TFLOP/s", "matmul_tflops", "{:.3f}"),
    ("ratio", "ratio", "{:.1%}"),
    ("STFT ms/sample", "stft_ms_per_sample", "{:.2f}"),
)


@dataclass
class Row:
    """One encoder in one dtype; ``ratio`` = ``achieved_tflops`` / ``matmul_tflops`` of the same dtype."""

    model: str
    params_m: float
    dtype: str
    batch: int
    samples_per_s: float
    gflop_fwd: float
    gflop_train: float
    achieved_tflops: float
    stft_ms_per_sample: float
    step_times_s: list[float] = field(default_factory=list)
    # Known only once the matmul ceiling has been measured after every model ran.
    matmul_tflops: float = math.nan
    ratio: float = math.nan


def _autocast(dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=DTYPES[dtype])


def matmul_tflops(dtype: str, size: int, repeats: int = 5) -> float:
    """The best TFLOP/s of ``repeats`` square ``size`` matmuls: the ceiling that conv-heavy training is held to."""
    torch.manual_seed(0)
    a = torch.randn(size, size, dtype=DTYPES[dtype])
    b = torch.randn(size, size, dtype=DTYPES[dtype])
    torch.mm(a, b)  # warm-up: first call picks kernels and allocates
    best = min(_elapsed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e12


def _elapsed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def count_flops(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
    """FLOPs of one forward, and of forward + backward, on ``inputs`` (the whole batch).

    Counted outside the timed loops: the counter intercepts every op and slows it down. Only
    matmuls and convolutions count (as in ``FlopCounterMode``); norms, pools and Adam are left out.
    """
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(inputs)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        normalized_l2(model(inputs), target).backward()
    model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops()


def time_train_step(
    model: nn.Module, spec: torch.Tensor, target: torch.Tensor, dtype: str, *, warmup: int, steps: int
) -> list[float]:
    """Seconds per training step (forward, loss, backward, Adam step) after ``warmup`` untimed steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(dtype):
            predicted = model(spec)
        normalized_l2(predicted, target).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    return [_elapsed(step) for _ in range(steps)]


def time_frontend(frontend: SpectrogramFrontend, waves: torch.Tensor, repeats: int = 3) -> float:
    """Milliseconds per sample of the STFT front end on ``waves`` [B, N], best of ``repeats``."""
    with torch.no_grad():
        frontend(waves)
        times = [_elapsed(lambda: frontend(waves)) for _ in range(repeats)]
    return min(times) / waves.shape[0] * 1e3


def benchmark_model(name: str, dtypes: Sequence[str], *, batch: int, warmup: int, steps: int) -> list[Row]:
    """Rows for one encoder: FLOPs and the front end measured once, the train step once per dtype."""
    torch.manual_seed(0)
    encoder = ENCODERS.create(name)
    frontend = SpectrogramFrontend(**encoder.frontend_config())
    waves = torch.randn(batch, round(CLIP_SECONDS * frontend.sample_rate)) * 0.1
    with torch.no_grad():
        spec = frontend(waves)
    target = torch.randn(batch, encoder.embed_dim)
    params_m = sum(p.numel() for p in encoder.parameters()) / 1e6
    fwd, train = count_flops(encoder.train(), spec, target)
    stft_ms = time_frontend(frontend, waves)
    del encoder
    rows = []
    for dtype in dtypes:
        torch.manual_seed(0)
        model = ENCODERS.create(name).train()
        inputs = spec
        if dtype != "fp32":  # oneDNN's fast bf16 convolutions want NHWC
            model = model.to(memory_format=torch.channels_last)
            inputs = spec.contiguous(memory_format=torch.channels_last)
        times = time_train_step(model, inputs, target, dtype, warmup=warmup, steps=steps)
        del model
        samples_per_s = batch / min(times)
        achieved = train / batch * samples_per_s / 1e12
        rows.append(
            Row(
                model=name,
                params_m=params_m,
                dtype=dtype,
                batch=batch,
                samples_per_s=samples_per_s,
                gflop_fwd=fwd / batch / 1e9,
                gflop_train=train / batch / 1e9,
                achieved_tflops=achieved,
                stft_ms_per_sample=stft_ms,
                step_times_s=times,
            )
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny encoder, one timed step, small matmuls")
    parser.add_argument("--models", help="comma-separated encoder names (default: s2f_cnn_tiny,s2f_cnn)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated, from: fp32, bf16")
    parser.add_argument("--batch-size", type=int, help="clips per step for every model (default: per model)")
    parser.add_argument("--steps", type=int, help="timed steps (default: per model)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: per model)")
    parser.add_argument("--matmul-size", type=int, help="side of the square matmuls (default: 4096, quick: 1024)")
    parser.add_argument("--json", type=Path, help="also write the machine, matmul speeds and rows here")
    args = parser.parse_args(argv)
    args.models = (args.models or ("s2f_cnn_tiny" if args.quick else "s2f_cnn_tiny,s2f_cnn")).split(",")
    args.dtypes = args.dtypes.split(",")
    unknown = [dtype for dtype in args.dtypes if dtype not in DTYPES]
    if unknown:
        parser.error(f"unknown dtype(s) {unknown}; choose from {sorted(DTYPES)}")
    args.matmul_size = args.matmul_size or (1024 if args.quick else 4096)
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Runs the benchmark, prints the table and returns its rows."""
    args = parse_args(argv)
    info = machine()
    print(
        f"# {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} threads, "
        f"{info['cpu_capability']} ({', '.join(info['bf16_isa']) or 'no bf16 ISA'}), clips {CLIP_SECONDS:g} s "
        f"at {SAMPLE_RATE} Hz, load average {info['load_average']:.2f}"
    )
    # The ceiling is measured before and after the models and the better kept, so that a busy
    # spell on shared cores during one measurement does not lower it and inflate every ratio.
    before = {dtype: matmul_tflops(dtype, args.matmul_size) for dtype in args.dtypes}
    rows: list[Row] = []
    for name in args.models:
        batch, warmup, steps = QUICK if args.quick else DEFAULTS.get(name, FALLBACK)
        rows += benchmark_model(
            name,
            args.dtypes,
            batch=args.batch_size or batch,
            warmup=args.warmup if args.warmup is not None else warmup,
            steps=args.steps or steps,
        )
    after = {dtype: matmul_tflops(dtype, args.matmul_size) for dtype in args.dtypes}
    matmul = {dtype: max(before[dtype], after[dtype]) for dtype in args.dtypes}
    rows = [
        replace(row, matmul_tflops=matmul[row.dtype], ratio=row.achieved_tflops / matmul[row.dtype]) for row in rows
    ]
    measured = ", ".join(f"{d}: {matmul[d]:.3f} (before {before[d]:.3f}, after {after[d]:.3f})" for d in args.dtypes)
    print(f"# dense {args.matmul_size}^2 matmul TFLOP/s {measured}")
    print(format_table(rows, COLUMNS))
    if args.json:
        report = {"machine": {**info, "load_average_after": load_average()}}
        report |= {
            "matmul_size": args.matmul_size,
            "matmul_tflops": matmul,
            "matmul_before": before,
            "matmul_after": after,
        }
        args.json.write_text(json.dumps({**report, "rows": [asdict(row) for row in rows]}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

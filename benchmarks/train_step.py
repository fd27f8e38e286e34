"""The whole training step of ``Speech2FaceSystem`` against the loader that feeds it, and against the hardware.

One run measures, on one device and precision:

- **loader samples/s**: ``S2FDataModule``'s train loader over real FLAC shards written for the run
  (6 s clips), with ``--num-workers`` processes, after the first batch (worker start-up) arrives;
- **step samples/s**: forward (STFT front end on the device, encoder, frozen teacher's classifier
  for the distillation term), the paper's losses, backward and the Adam step, on batches already
  on the device: the fastest of ``--steps`` timed steps;
- **loader / step**: the ratio of the two; below 1 the GPU (or CPU) waits for data;
- **achieved TFLOP/s** = FLOPs of one step (``FlopCounterMode``: matmuls and convolutions of the
  forward and backward) x steps/s, divided by the **dense matmul TFLOP/s** measured in the same run,
  on the same device, in the step's compute dtype: an MFU-style ratio;
- **peak MB/sample**: memory the step needs beyond the model and optimiser state, per clip (GPU:
  ``torch.cuda.max_memory_allocated``; CPU: the rise of the process's peak resident set, which
  Linux lets us reset through ``/proc/self/clear_refs``), and the process's whole peak;
- **inference ms**: one 6 s clip, waveform to embedding, ``eval`` and ``no_grad``, median of
  ``--infer-repeats``, eager and under ``torch.compile`` (when it compiles; its first call is
  reported as compile time, not as latency).

Usage:
    python benchmarks/train_step.py [--quick] [--model tiny|full] [--precision 32-true|bf16-mixed]
        [--device cpu|cuda] [--batch-size N] [--num-workers N] [--steps N] [--no-compile] [--json out.json]

The loader always decodes on the CPU; with ``--device cuda`` its batches are pinned and copied.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _table import format_table, load_average, machine
from s2f import TEACHERS
from s2f.audio import SAMPLE_RATE
from s2f.data import S2FDataModule
from s2f.shards import ClipRecord, ShardWriter
from s2f.train import Speech2FaceSystem

__all__ = ["Row", "main", "matmul_tflops", "peak_memory", "write_shards"]

CLIP_SECONDS = 6.0
MODELS = {"tiny": ("s2f_cnn_tiny", "vggface_tiny", {}), "full": ("s2f_cnn", "vggface", {"random_init_seed": 0})}
PRECISIONS = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}
COLUMNS = (
    ("model", "model", "{}"),
    ("device", "device", "{}"),
    ("precision", "precision", "{}"),
    ("batch", "batch", "{}"),
    ("workers", "workers", "{}"),
    ("loader samples/s", "loader_samples_per_s", "{:.3g}"),
    ("step samples/s", "step_samples_per_s", "{:.3g}"),
    ("loader/step", "loader_over_step", "{:.1f}x"),
    ("GFLOP/sample", "gflop_per_sample", "{:.3g}"),
    ("achieved TFLOP/s", "achieved_tflops", "{:.3f}"),
    ("matmul TFLOP/s", "matmul_tflops", "{:.3f}"),
    ("MFU", "mfu", "{:.1%}"),
    ("peak MB/sample", "peak_mb_per_sample", "{:.0f}"),
    ("peak GB total", "peak_gb_total", "{:.2f}"),
    ("infer ms eager", "infer_ms_eager", "{:.1f}"),
    ("infer ms compiled", "infer_ms_compiled", "{:.1f}"),
)


@dataclass
class Row:
    """One configuration; see the module docstring for every figure."""

    model: str
    device: str
    precision: str
    batch: int
    workers: int
    loader_samples_per_s: float
    step_samples_per_s: float
    loader_over_step: float
    gflop_per_sample: float
    achieved_tflops: float
    matmul_tflops: float
    mfu: float
    peak_mb_per_sample: float
    peak_gb_total: float
    infer_ms_eager: float
    infer_ms_compiled: float | None
    compile_s: float | None
    compile_error: str | None
    step_times_s: list[float]


# --------------------------------------------------------------------------------------------- data


def write_shards(root: Path, *, clips: int, embed_dim: int, teacher: str) -> Path:
    """``clips`` train clips of 6 s FLAC (a chirp plus noise, so FLAC has real work) and random embeddings."""
    rng = np.random.default_rng(0)
    t = np.arange(round(CLIP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    face = np.zeros((224, 224, 3), np.uint8)
    with ShardWriter(root, teacher=teacher, embed_dim=embed_dim) as writer:
        for index in range(clips):
            pitch = 100 + 5 * (index % 40)
            audio = 0.3 * np.sin(2 * np.pi * pitch * t * (1 + 0.05 * t)) + 0.02 * rng.standard_normal(t.shape)
            embedding = rng.random(embed_dim).astype(np.float32)
            writer.write(
                ClipRecord(f"c{index}", f"s{index // 4}", audio.astype(np.float32), face, embedding, split="train")
            )
    return root


def loader_samples_per_s(datamodule: S2FDataModule, epochs: int) -> float:
    """Clips per second once the first batch is out (the workers have started), over ``epochs``."""
    clips, elapsed = 0, 0.0
    for _ in range(epochs):
        iterator = iter(datamodule.train_dataloader())
        next(iterator)
        start = time.perf_counter()
        for batch in iterator:
            clips += len(batch["clip_id"])
        elapsed += time.perf_counter() - start
    return clips / elapsed if elapsed > 0 else math.nan


# --------------------------------------------------------------------------------------------- device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    """Best TFLOP/s of square ``size`` matmuls in ``dtype`` on ``device``: the run's ceiling."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    torch.mm(a, b)
    return 2 * size**3 / min(_timed(lambda: torch.mm(a, b), device) for _ in range(repeats)) / 1e12


def _rss_bytes(field: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024
    return math.nan


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Yields a dict filled on exit with ``extra`` (bytes above the start) and ``total`` (peak bytes)."""
    result: dict[str, float] = {}
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = float(torch.cuda.memory_allocated(device))
        yield result
        _sync(device)
        peak = float(torch.cuda.max_memory_allocated(device))
    else:
        # Writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one (Linux).
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        start = _rss_bytes("VmRSS")
        yield result
        peak = _rss_bytes("VmHWM")
    result.update(extra=peak - start, total=peak)


# --------------------------------------------------------------------------------------------- step


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "32-true":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def _train_step(system: Speech2FaceSystem, optimizer: torch.optim.Optimizer, precision: str) -> Callable[[Any], None]:
    device = system.device

    def step(batch: dict[str, Any]) -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss, _ = system._losses(batch)
        loss.backward()
        optimizer.step()

    return step


def _on_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _latency_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    return statistics.median(_timed(fn, device) for _ in range(repeats)) * 1e3


def inference_ms(
    system: Speech2FaceSystem, device: torch.device, precision: str, repeats: int, compile_model: bool
) -> tuple[float, float | None, float | None, str | None]:
    """Eager and compiled latency for one 6 s clip, the compile time, and why compiling failed (if it did)."""
    system.eval()
    wave = 0.1 * torch.randn(1, round(CLIP_SECONDS * SAMPLE_RATE), device=device)

    def run(model: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def call() -> object:
            with torch.no_grad(), _autocast(device, precision):
                return model(wave)

        return call

    eager = run(system)
    eager()
    eager_ms = _latency_ms(eager, device, repeats)
    if not compile_model:
        return eager_ms, None, None, None
    try:
        compiled = run(torch.compile(system))
        compile_s = _timed(compiled, device)
        return eager_ms, _latency_ms(compiled, device, repeats), compile_s, None
    except Exception as err:  # torch.compile needs a working C++/Triton toolchain; report, do not crash
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        return eager_ms, None, None, reason


def benchmark(args: argparse.Namespace, workdir: Path) -> Row:
    """Everything for one configuration; see the module docstring."""
    device = torch.device(args.device)
    encoder_name, teacher_name, teacher_kwargs = MODELS[args.model]
    torch.manual_seed(0)
    teacher = TEACHERS.create(teacher_name, **teacher_kwargs)
    system = Speech2FaceSystem(encoder_name, teacher, channels_last=args.precision != "32-true")
    shards = write_shards(workdir / "shards", clips=args.clips, embed_dim=teacher.embed_dim, teacher=teacher.name)
    datamodule = S2FDataModule(
        str(shards), batch_size=args.batch_size, num_workers=args.num_workers, pin_memory=device.type == "cuda"
    )
    datamodule.setup("fit")
    loader_rate = loader_samples_per_s(datamodule, args.loader_epochs)

    # One batch, read in this process: a loader iterator left open would keep its workers decoding
    # in the background while the step and the latency are timed.
    reader = S2FDataModule(str(shards), batch_size=args.batch_size, num_workers=0)
    batch = _on_device(next(iter(reader.train_dataloader())), device)
    system.to(device).train()
    optimizer = system.configure_optimizers()["optimizer"]
    step = _train_step(system, optimizer, args.precision)
    with FlopCounterMode(display=False) as counter, _autocast(device, args.precision):
        loss, _ = system._losses(batch)
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()

    for _ in range(args.warmup):
        step(batch)
    with peak_memory(device) as memory:
        step(batch)
    times = [_timed(lambda: step(batch), device) for _ in range(args.steps)]
    step_rate = args.batch_size / min(times)
    achieved = flops * step_rate / args.batch_size / 1e12
    ceiling = matmul_tflops(device, PRECISIONS[args.precision], args.matmul_size)
    eager_ms, compiled_ms, compile_s, compile_error = inference_ms(
        system, device, args.precision, args.infer_repeats, not args.no_compile
    )
    return Row(
        model=encoder_name,
        device=str(device),
        precision=args.precision,
        batch=args.batch_size,
        workers=args.num_workers,
        loader_samples_per_s=loader_rate,
        step_samples_per_s=step_rate,
        loader_over_step=loader_rate / step_rate,
        gflop_per_sample=flops / args.batch_size / 1e9,
        achieved_tflops=achieved,
        matmul_tflops=ceiling,
        mfu=achieved / ceiling,
        peak_mb_per_sample=memory["extra"] / args.batch_size / 1e6,
        peak_gb_total=memory["total"] / 1e9,
        infer_ms_eager=eager_ms,
        infer_ms_compiled=compiled_ms,
        compile_s=compile_s,
        compile_error=compile_error,
        step_times_s=times,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, small batch, few steps, no compile")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny", help="tiny (CPU) or full (the paper's)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), help="default: bf16-mixed on cuda, 32-true on cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, help="clips per step (default: 8; full model on CPU: 2)")
    parser.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1), help="loader processes")
    parser.add_argument("--clips", type=int, help="clips in the shards written for the run (default: 8 batches)")
    parser.add_argument("--loader-epochs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the fastest counts)")
    parser.add_argument("--infer-repeats", type=int, default=10)
    parser.add_argument("--matmul-size", type=int, help="side of the square matmuls (default: 4096, 8192 on cuda)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile latency")
    parser.add_argument("--json", type=Path, help="also write the machine and the row here")
    args = parser.parse_args(argv)
    args.precision = args.precision or ("bf16-mixed" if args.device.startswith("cuda") else "32-true")
    on_cpu_full = args.model == "full" and not args.device.startswith("cuda")
    args.batch_size = args.batch_size or (2 if args.quick or on_cpu_full else 8)
    if args.quick:
        args.steps, args.warmup, args.infer_repeats, args.no_compile = 2, 1, 3, True
        args.matmul_size = args.matmul_size or 1024
        args.num_workers = min(args.num_workers, 2)
    args.matmul_size = args.matmul_size or (8192 if args.device.startswith("cuda") else 4096)
    args.clips = args.clips or args.batch_size * max(args.num_workers, 1) * (2 if args.quick else 8)
    return args


def main(argv: Sequence[str] | None = None) -> Row:
    """Runs the benchmark, prints the table and returns its row."""
    args = parse_args(argv)
    info = machine()
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    print(
        f"# {info.get('gpu', info['cpu'])}, {info['cores']} CPU cores, torch {info['torch']}, "
        f"{info['threads']} threads, load average {info['load_average']:.2f}; {args.clips} clips of {CLIP_SECONDS:g} s"
    )
    with tempfile.TemporaryDirectory(prefix="s2f-train-step-") as workdir:
        row = benchmark(args, Path(workdir))
    print(format_table([row], COLUMNS))
    verdict = "keeps up with" if row.loader_over_step >= 1 else "is SLOWER than"
    print(f"# the loader ({row.workers} workers) {verdict} the train step: {row.loader_over_step:.1f}x its rate")
    if row.compile_error:
        print(f"# torch.compile failed: {row.compile_error}")
    elif row.compile_s is not None:
        print(f"# torch.compile: first call {row.compile_s:.1f} s")
    if args.json:
        report = {"machine": {**info, "load_average_after": load_average()}, "args": vars(args) | {"json": None}}
        args.json.write_text(json.dumps({**report, "row": asdict(row)}, indent=2, default=str) + "\n")
    return row


if __name__ == "__main__":
    main()

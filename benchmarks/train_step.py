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

- **H100 need**: the clips/s one H100 would consume at 40 % MFU of its dense bf16 rate (989 TFLOP/s)
  training the paper's CNN (617 GFLOP per clip, the full model's count), against the loader's
  decoded clips/s per worker process: how many loader processes one such GPU needs.

The train step runs the encoder under ``torch.compile`` with ``--train-compile`` (the system's
``compile: true``; default on CUDA, off on the CPU), and the optimiser the system configures (fused
Adam on CPU and CUDA). On CUDA the defaults are the GPU recipe's: bf16-mixed, channels-last, the
compiled encoder, and ``--batch-size max``: the largest power of two (up to 512) whose step fits.

Usage:
    python benchmarks/train_step.py [--quick] [--model tiny|full] [--precision 32-true|bf16-mixed]
        [--device cpu|cuda] [--batch-size N|max] [--num-workers N] [--steps N] [--train-compile]
        [--no-compile] [--json out.json]

The loader always decodes on the CPU; with ``--device cuda`` its batches are pinned and copied.
``--device cuda`` on a machine without CUDA stops with one line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
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
from _timing import PRECISIONS, matmul_tflops
from _timing import autocast as _autocast
from _timing import sync as _sync
from _timing import timed as _timed
from s2f import TEACHERS
from s2f.audio import SAMPLE_RATE
from s2f.data import S2FDataModule
from s2f.shards import ClipRecord, ShardWriter
from s2f.train import Speech2FaceSystem

__all__ = ["Row", "h100_samples_per_s", "largest_batch", "main", "matmul_tflops", "peak_memory", "write_shards"]

CLIP_SECONDS = 6.0
H100_BF16_TFLOPS = 989.0  # dense, SXM
TARGET_MFU = 0.40
PAPER_GFLOP_PER_SAMPLE = 617.0  # FlopCounterMode over one training step of s2f_cnn, per clip
MAX_BATCH = 512
MODELS = {"tiny": ("s2f_cnn_tiny", "vggface_tiny", {}), "full": ("s2f_cnn", "vggface", {"random_init_seed": 0})}
COLUMNS = (
    ("model", "model", "{}"),
    ("device", "device", "{}"),
    ("precision", "precision", "{}"),
    ("batch", "batch", "{}"),
    ("workers", "workers", "{}"),
    ("loader samples/s", "loader_samples_per_s", "{:.3g}"),
    ("step samples/s", "step_samples_per_s", "{:.3g}"),
    ("loader/step", "loader_over_step", "{:.1f}x"),
    ("compiled", "train_compile", "{}"),
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
    train_compile: bool
    train_compile_s: float | None
    loader_per_worker: float
    h100_samples_per_s: float
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


def _resized(batch: dict[str, Any], size: int) -> dict[str, Any]:
    """The batch's tensors repeated (or cut) to ``size`` clips: a step batch of any size from a few clips."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.repeat(math.ceil(size / len(value)), *([1] * (value.ndim - 1)))[:size]
        out[key] = value
    return out


def largest_batch(step: Callable[[Any], None], batch: dict[str, Any], device: torch.device, start: int) -> int:
    """The largest power of two from ``start`` up to ``MAX_BATCH`` whose training step fits in memory (CUDA)."""
    fits = 0
    size = start
    while size <= MAX_BATCH:
        try:
            step(_resized(batch, size))
            _sync(device)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        fits, size = size, size * 2
    if not fits:
        raise SystemExit(f"train_step.py: not even a batch of {start} fits on {device}")
    return fits


def h100_samples_per_s() -> float:
    """Clips/s one H100 consumes training the paper's CNN at ``TARGET_MFU`` of its dense bf16 rate."""
    return TARGET_MFU * H100_BF16_TFLOPS * 1e12 / (PAPER_GFLOP_PER_SAMPLE * 1e9)


def _latency_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    return statistics.median(_timed(fn, device) for _ in range(repeats)) * 1e3


def inference_ms(
    system: Speech2FaceSystem, device: torch.device, precision: str, repeats: int, compile_model: bool
) -> tuple[float, float | None, float | None, str | None]:
    """Eager and compiled latency for one 6 s clip, the compile time, and why compiling failed (if it did)."""
    system.eval()
    system.hparams["compile"] = False  # "eager" means eager, even when the train step compiled the encoder
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


def _loader_rate(args: argparse.Namespace, workdir: Path, teacher: Any, device: torch.device) -> tuple[float, dict]:
    """The loader's clips/s over shards written for the run, and one batch read in this process."""
    shards = write_shards(workdir / "shards", clips=args.clips, embed_dim=teacher.embed_dim, teacher=teacher.name)
    datamodule = S2FDataModule(
        str(shards), batch_size=args.loader_batch, num_workers=args.num_workers, pin_memory=device.type == "cuda"
    )
    datamodule.setup("fit")
    rate = loader_samples_per_s(datamodule, args.loader_epochs)
    # One batch, read in this process: a loader iterator left open would keep its workers decoding
    # in the background while the step and the latency are timed.
    reader = S2FDataModule(str(shards), batch_size=args.loader_batch, num_workers=0)
    return rate, _on_device(next(iter(reader.train_dataloader())), device)


def _count_flops(system: Speech2FaceSystem, batch: dict[str, Any], precision: str) -> int:
    """FLOPs of one step's forward and backward, counted eagerly (dynamo off: the counter must see every op)."""
    with torch._dynamo.config.patch(disable=True), FlopCounterMode(display=False) as counter:
        with _autocast(system.device, precision):
            loss, _ = system._losses(batch)
        loss.backward()
    system.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _first_step(
    step: Callable[[Any], None], batch: dict[str, Any], args: argparse.Namespace, device: torch.device
) -> tuple[float, dict[str, Any]]:
    """Seconds of the first step (the compiling one), halving a searched batch that fitted eagerly but not compiled."""
    while True:
        try:
            return _timed(lambda b=batch: step(b), device), batch
        except torch.cuda.OutOfMemoryError:
            if not args.searched_batch or args.batch_size <= 8:
                raise
        torch.cuda.empty_cache()
        args.batch_size //= 2
        batch = _resized(batch, args.batch_size)


def benchmark(args: argparse.Namespace, workdir: Path) -> Row:
    """Everything for one configuration; see the module docstring."""
    device = torch.device(args.device)
    encoder_name, teacher_name, teacher_kwargs = MODELS[args.model]
    torch.manual_seed(0)
    teacher = TEACHERS.create(teacher_name, **teacher_kwargs)
    channels_last = args.precision != "32-true"
    system = Speech2FaceSystem(encoder_name, teacher, channels_last=channels_last, compile=args.train_compile)
    loader_rate, loaded = _loader_rate(args, workdir, teacher, device)
    system.to(device).train()
    optimizer = system.configure_optimizers()["optimizer"]
    step = _train_step(system, optimizer, args.precision)
    args.searched_batch = args.batch_size == "max"
    if args.searched_batch:  # sized eagerly: compiling every candidate size would take longer than the search
        with torch._dynamo.config.patch(disable=True):
            args.batch_size = largest_batch(step, loaded, device, start=8)
        optimizer.zero_grad(set_to_none=True)
    compile_step_s, batch = _first_step(step, _resized(loaded, args.batch_size), args, device)  # compiles, if asked
    flops = _count_flops(system, batch, args.precision)
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
        train_compile=args.train_compile,
        train_compile_s=compile_step_s if args.train_compile else None,
        loader_per_worker=loader_rate / max(args.num_workers, 1),
        h100_samples_per_s=h100_samples_per_s(),
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


def _batch_size(text: str) -> int | str:
    return text if text == "max" else int(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, small batch, few steps, no compile")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny", help="tiny (CPU) or full (the paper's)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), help="default: bf16-mixed on cuda, 32-true on cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch-size", type=_batch_size, help="clips per step, or max (CUDA; the default there); else 8, full on CPU 2"
    )
    parser.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1), help="loader processes")
    parser.add_argument("--clips", type=int, help="clips in the shards written for the run (default: 8 batches)")
    parser.add_argument("--loader-epochs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (compiling) one")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the fastest counts)")
    parser.add_argument("--infer-repeats", type=int, default=10)
    parser.add_argument("--matmul-size", type=int, help="side of the square matmuls (default: 4096, 8192 on cuda)")
    parser.add_argument(
        "--train-compile",
        action=argparse.BooleanOptionalAction,
        help="train with the encoder under torch.compile (default: on cuda yes, on cpu no)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile inference latency")
    parser.add_argument("--json", type=Path, help="also write the machine and the row here")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit(f"train_step.py: --device {args.device} needs CUDA; torch {torch.__version__} sees no CUDA device")
    if args.batch_size == "max" and not cuda:
        parser.error("--batch-size max searches GPU memory; give a number on the CPU")
    args.precision = args.precision or ("bf16-mixed" if cuda else "32-true")
    args.train_compile = cuda if args.train_compile is None else args.train_compile
    on_cpu_full = args.model == "full" and not cuda
    args.batch_size = args.batch_size or ("max" if cuda and not args.quick else 2 if args.quick or on_cpu_full else 8)
    if args.quick:
        args.steps, args.warmup, args.infer_repeats, args.no_compile = 2, 0, 3, True
        args.matmul_size = args.matmul_size or 1024
        args.num_workers = min(args.num_workers, 2)
    args.matmul_size = args.matmul_size or (8192 if cuda else 4096)
    # The loader's own batches stay small: its clips/s hardly depends on them, and shards for
    # several batches of the largest GPU batch would take minutes to write.
    args.loader_batch = min(args.batch_size, 32) if isinstance(args.batch_size, int) else 32
    args.clips = args.clips or args.loader_batch * max(args.num_workers, 1) * (2 if args.quick else 8)
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
    need = row.h100_samples_per_s
    print(
        f"# loader: {row.loader_per_worker:.0f} clips/s per worker process; one H100 training s2f_cnn at "
        f"{TARGET_MFU:.0%} MFU ({PAPER_GFLOP_PER_SAMPLE:g} GFLOP/clip) needs {need:.0f} clips/s = "
        f"{need / row.loader_per_worker:.1f} such workers (these {row.workers}: {row.loader_samples_per_s / need:.2f}x)"
    )
    if row.train_compile_s is not None:
        print(f"# training under torch.compile: first step (compiling) {row.train_compile_s:.1f} s")
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

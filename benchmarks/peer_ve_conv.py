"""The paper's CNN (``s2f_cnn``) against the open PyTorch reimplementation's ``VE_conv``, side by side.

The peer is Kacper Pietkun's *Speech-to-face* (github.com/Kacper-Pietkun/Speech-to-face), whose
voice encoder ``VE_conv`` is described there as eleven layers on a [2, 257, 601] spectrogram
(frequency before time): nine 4x4 convolutions without padding (64, 64, 128, 128, 128, 256, 512,
512, 512 channels; the last two with stride 2), each followed by ReLU and BatchNorm, max-pooling
of 2 over time after convolutions 3-6, an average over what is left of time after the ninth
(before its ReLU and BatchNorm), then FC 29,184 -> 4096 -> 4096, each with a ReLU. That is 148 M
parameters and about 13 % fewer multiply-adds than s2f's "same"-padded CNN (163 M).
:func:`build_ve_conv` rebuilds it from that description (not from the peer's code).

Both models are timed in one process, on the same device, against the same run's dense matmul:

- **train**: one step of batch ``--batch-size`` (8). s2f runs its real training step
  (``Speech2FaceSystem``: STFT on the device, encoder, VGG-Face classifier for the distillation
  term, the paper's losses, backward, the system's own optimiser, fused Adam where the device has
  one); fp32 in NCHW, bf16 under autocast in channels-last (the recipes' ``channels_last: true``),
  and, with ``--compile``, the encoder under ``torch.compile`` (the system's ``compile: true``).
  The peer runs as published: NCHW in both precisions, ``torch.optim.Adam`` with the paper's
  settings (the default, per-tensor implementation on the CPU), the normalised L2 loss against
  random targets, on a spectrogram made once outside the timed loop.
- **infer**: one 6 s clip in eval mode under ``no_grad``, median of ``--infer-repeats``: s2f from
  the waveform (its STFT included, about 1 ms), the peer from its spectrogram.

Printed ratios: s2f / peer in each precision and mode, s2f bf16 against the peer's fp32 eager
training (the issue's target: 3x), and each row's share of the same run's matmul FLOP/s.

Usage:
    python benchmarks/peer_ve_conv.py [--quick] [--device cpu|cuda] [--precisions 32-true,bf16-mixed]
        [--batch-size N] [--steps N] [--warmup N] [--infer-repeats N] [--compile] [--clock wall|cpu]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from _table import format_table, load_average, machine
from _timing import CLOCKS, PRECISIONS, matmul_tflops, timed
from _timing import autocast as _autocast
from s2f import TEACHERS
from s2f.audio import SAMPLE_RATE
from s2f.train import Speech2FaceSystem
from s2f.train.losses import normalized_l2

__all__ = ["VE_CONV_CHANNELS", "Row", "build_ve_conv", "main"]

VE_CONV_CHANNELS = (64, 64, 128, 128, 128, 256, 512, 512, 512)
_POOL_AFTER = (2, 3, 4, 5)  # 0-based: convolutions 3-6 halve time
_STRIDED = (7, 8)
PEER_INPUT = (2, 257, 601)  # channels (real, imaginary), frequency bins, frames of 6 s
CLIP_SECONDS = 6.0
COLUMNS = (
    ("model", "model", "{}"),
    ("precision", "precision", "{}"),
    ("mode", "mode", "{}"),
    ("batch", "batch", "{}"),
    ("params M", "params_m", "{:.1f}"),
    ("GFLOP/sample", "gflop_per_sample", "{:.3g}"),
    ("samples/s", "samples_per_s", "{:.3g}"),
    ("ms/sample", "ms_per_sample", "{:.0f}"),
    ("achieved TFLOP/s", "achieved_tflops", "{:.3f}"),
    ("matmul TFLOP/s", "matmul_tflops", "{:.3f}"),
    ("MFU", "mfu", "{:.1%}"),
)


def build_ve_conv(
    channels: Sequence[int] = VE_CONV_CHANNELS,
    *,
    num_bins: int = PEER_INPUT[1],
    hidden_dim: int = 4096,
    embed_dim: int = 4096,
    kernel_size: int = 4,
) -> nn.Sequential:
    """The peer's ``VE_conv`` as its 11 layers: [B, 2, bins, frames] -> [B, embed_dim] (ReLU'd, as published).

    Layers 1-9 are the convolution blocks (valid 4x4 convolutions, ReLU, BatchNorm; time pooling
    after 3-6; strides of 2 in 8 and 9, where 9 averages time away before its ReLU); 10 and 11 are
    the two fully connected layers. ``channels`` etc. shrink it for tests.

    Example:
        >>> model = build_ve_conv((4, 4, 8, 8, 8, 8, 8, 8, 8), hidden_dim=16, embed_dim=8)
        >>> len(model), tuple(model(torch.randn(2, 2, 257, 601)).shape)
        (11, (2, 8))
    """
    layers: list[nn.Module] = []
    in_channels, bins = PEER_INPUT[0], num_bins
    for index, out_channels in enumerate(channels):
        stride = 2 if index in _STRIDED else 1
        block: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride)]
        if index == len(channels) - 1:
            block.append(nn.AdaptiveAvgPool2d((None, 1)))  # mean over time, frequency kept
        block += [nn.ReLU(), nn.BatchNorm2d(out_channels)]
        if index in _POOL_AFTER:
            block.append(nn.MaxPool2d(kernel_size=(1, 2), stride=(1, 2)))  # time is the last axis
        layers.append(nn.Sequential(*block))
        bins = (bins - kernel_size) // stride + 1
        in_channels = out_channels
    layers.append(nn.Sequential(nn.Flatten(), nn.Linear(in_channels * bins, hidden_dim), nn.ReLU()))
    layers.append(nn.Sequential(nn.Linear(hidden_dim, embed_dim), nn.ReLU()))
    return nn.Sequential(*layers)


@dataclass
class Row:
    """One model, precision and mode; see the module docstring."""

    model: str
    precision: str
    mode: str
    batch: int
    params_m: float
    gflop_per_sample: float
    samples_per_s: float
    ms_per_sample: float
    achieved_tflops: float
    matmul_tflops: float
    mfu: float
    times_s: list[float]


# --------------------------------------------------------------------------------------------- timing


_clock = time.perf_counter  # --clock picks one of CLOCKS


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    return timed(fn, device, _clock)


def _flops(step: Callable[[], object]) -> int:
    # Eagerly (dynamo off), so that a compiled encoder neither compiles under the counter nor hides its ops.
    with torch._dynamo.config.patch(disable=True), FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


# --------------------------------------------------------------------------------------------- models


class _Contender:
    """One model with its train step (batch on the device) and its one-clip inference call."""

    def __init__(self, name: str, model: nn.Module, train: Callable[[], object], infer: Callable[[], object]):
        self.name, self.model, self.train, self.infer = name, model, train, infer
        self.params_m = sum(p.numel() for p in model.parameters()) / 1e6


def _s2f(device: torch.device, precision: str, batch: int, compile_encoder: bool) -> _Contender:
    torch.manual_seed(0)
    teacher = TEACHERS.create("vggface", random_init_seed=0)
    bf16 = precision != "32-true"
    system = Speech2FaceSystem("s2f_cnn", teacher, channels_last=bf16, compile=compile_encoder).to(device).train()
    optimizer = system.configure_optimizers()["optimizer"]
    samples = round(CLIP_SECONDS * SAMPLE_RATE)
    data = {"audio": 0.1 * torch.randn(batch, samples, device=device), "embedding": torch.rand(batch, 4096).to(device)}
    wave = 0.1 * torch.randn(1, samples, device=device)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss, _ = system._losses(data)
        loss.backward()
        optimizer.step()

    def infer() -> object:
        system.eval()
        with torch.no_grad(), _autocast(device, precision):
            out = system(wave)
        system.train()
        return out

    return _Contender("s2f_cnn", system.encoder, train, infer)


def _peer(device: torch.device, precision: str, batch: int) -> _Contender:
    torch.manual_seed(0)
    model = build_ve_conv().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-4)
    spec = torch.randn(batch, *PEER_INPUT, device=device)
    target = torch.rand(batch, 4096, device=device)
    one = torch.randn(1, *PEER_INPUT, device=device)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            predicted = model(spec)
        normalized_l2(predicted, target).backward()
        optimizer.step()

    def infer() -> object:
        model.eval()
        with torch.no_grad(), _autocast(device, precision):
            out = model(one)
        model.train()
        return out

    return _Contender("ve_conv (peer)", model, train, infer)


def _measure(contender: _Contender, args: argparse.Namespace, precision: str, ceiling: float) -> list[Row]:
    device = torch.device(args.device)
    rows = []
    for mode in ("train", "infer"):
        fn, batch = (contender.train, args.batch_size) if mode == "train" else (contender.infer, 1)
        flops = _flops(fn)  # also the first (warm-up) call
        contender.model.zero_grad(set_to_none=True)
        for _ in range(max(args.warmup, 1) if args.compile else args.warmup):  # the first compiled call compiles
            fn()
        if mode == "train":
            times = [_timed(fn, device) for _ in range(args.steps)]
            seconds = min(times)  # the fastest step: shared cores only ever slow one down
        else:
            times = [_timed(fn, device) for _ in range(args.infer_repeats)]
            seconds = statistics.median(times)
        achieved = flops / seconds / 1e12
        rows.append(
            Row(
                model=contender.name,
                precision=precision,
                mode=mode,
                batch=batch,
                params_m=contender.params_m,
                gflop_per_sample=flops / batch / 1e9,
                samples_per_s=batch / seconds,
                ms_per_sample=seconds / batch * 1e3,
                achieved_tflops=achieved,
                matmul_tflops=ceiling,
                mfu=achieved / ceiling,
                times_s=times,
            )
        )
    return rows


def benchmark(args: argparse.Namespace) -> list[Row]:
    """Every row: per precision, the matmul ceiling, then s2f and the peer, train and infer."""
    device = torch.device(args.device)
    rows: list[Row] = []
    for precision in args.precisions:
        ceiling = matmul_tflops(device, PRECISIONS[precision], args.matmul_size, clock=_clock)
        for name in ("s2f", "peer"):
            if name == "s2f":
                contender = _s2f(device, precision, args.batch_size, args.compile)
            else:
                contender = _peer(device, precision, args.batch_size)
            rows += _measure(contender, args, precision, ceiling)
            for row in rows[-2:]:  # as they come: a long run on shared cores leaves something if stopped
                print(f"# {row.model} {row.precision} {row.mode}: {row.samples_per_s:.3g} samples/s", flush=True)
            del contender
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def ratios(rows: Sequence[Row]) -> list[str]:
    """The comparisons the issue asks for, as lines."""
    by = {(r.model.split()[0], r.precision, r.mode): r for r in rows}
    lines = []
    for (model, precision, mode), row in by.items():
        peer = by.get(("ve_conv", precision, mode))
        if model == "s2f_cnn" and peer is not None:
            lines.append(f"# {mode} {precision}: s2f / peer samples/s = {row.samples_per_s / peer.samples_per_s:.2f}x")
    peer_fp32 = by.get(("ve_conv", "32-true", "train"))
    s2f_bf16 = by.get(("s2f_cnn", "bf16-mixed", "train"))
    if peer_fp32 is not None and s2f_bf16 is not None:
        ratio = s2f_bf16.samples_per_s / peer_fp32.samples_per_s
        lines.append(f"# train: s2f bf16 / peer fp32 eager = {ratio:.2f}x (target 3x)")
        lines.append(f"# train: s2f bf16 MFU (of the same run's bf16 matmul) = {s2f_bf16.mfu:.1%} (target 45 %)")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 2, one timed step, 2 inference repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--precisions", default="32-true,bf16-mixed", help="comma-separated: 32-true, bf16-mixed")
    parser.add_argument("--batch-size", type=int, help="clips per train step (default 8; --quick 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after the FLOP-counting one")
    parser.add_argument("--steps", type=int, default=2, help="timed train steps (the fastest counts)")
    parser.add_argument("--infer-repeats", type=int, default=5, help="timed inference calls (the median counts)")
    parser.add_argument("--matmul-size", type=int, help="side of the square matmuls (4096; 8192 on cuda)")
    parser.add_argument("--compile", action="store_true", help="train s2f with its encoder under torch.compile")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="cpu: the process's CPU seconds instead of wall seconds (CPU only; with OMP_NUM_THREADS=1, per core: "
        "on cores shared with other jobs it leaves out the time this process waits for a core)",
    )
    parser.add_argument("--json", type=Path, help="also write the machine and the rows here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"peer_ve_conv.py: --device {args.device} needs CUDA; torch {torch.__version__} sees no CUDA device")
    if args.clock == "cpu" and args.device != "cpu":
        parser.error("--clock cpu times the CPU; a GPU's work is not in it")
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = sorted(set(args.precisions) - set(PRECISIONS))
    if unknown:
        parser.error(f"unknown precision(s) {unknown}; choose from {sorted(PRECISIONS)}")
    if args.quick:
        args.warmup, args.steps, args.infer_repeats = 0, 1, 2
        args.matmul_size = args.matmul_size or 2048
    args.batch_size = args.batch_size or (2 if args.quick else 8)
    args.matmul_size = args.matmul_size or (8192 if args.device.startswith("cuda") else 4096)
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Runs the comparison, prints the table and the ratios, and returns the rows."""
    global _clock
    args = parse_args(argv)
    _clock = CLOCKS[args.clock]
    info = machine()
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    print(
        f"# {info.get('gpu', info['cpu'])}, {info['cores']} CPU cores, torch {info['torch']}, "
        f"{info['threads']} threads, load average {info['load_average']:.2f}; batch {args.batch_size}; "
        f"{args.clock} clock"
    )
    rows = benchmark(args)
    print(format_table(rows, COLUMNS))
    print("\n".join(ratios(rows)))
    print(f"# load average at the end {load_average():.2f}")
    if args.json:
        report: dict[str, Any] = {"machine": info, "args": vars(args) | {"json": None}}
        args.json.write_text(json.dumps({**report, "rows": [asdict(r) for r in rows]}, indent=2, default=str) + "\n")
    return rows


if __name__ == "__main__":
    main()

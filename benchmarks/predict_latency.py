"""``Speech2Face.predict`` on one 6 s clip, against the peer's ``VE_conv`` in fp32 eager: same run, same cores.

Contenders, each timed once per round, rounds interleaved (so load from other work on shared cores falls
on all of them alike), median over ``--repeats`` rounds after ``--warmup`` untimed ones:

- **peer fp32 eager**: ``VE_conv`` (``benchmarks/peer_ve_conv.py``'s ``build_ve_conv``, the peer's
  encoder rebuilt from its description) in eval mode under ``no_grad``, on its [1, 2, 257, 601]
  spectrogram made once outside the timing. The baseline of every ratio.
- **s2f forward fp32**: ``Speech2Face.forward`` under ``inference_mode`` (what ``predict`` ran before
  the fast path): front end and encoder in fp32, NCHW.
- **s2f predict fp32**: ``predict(clip, settings=InferenceSettings(inference_precision="fp32"))``: fp32,
  channels-last.
- **s2f predict default**: ``predict(clip)``: the precision ``auto`` picks here (bf16 where the CPU has
  AVX-512 BF16 or AMX), channels-last, eager.
- **s2f predict compiled**: ``predict(clip, settings=InferenceSettings(compile=True))``: the default precision under
  ``torch.compile`` with frozen weights; its first call (compiling) is reported apart, not timed.

``predict`` is timed whole: the clip (a tensor in memory) fitted to 6 s, the STFT, the encoder, the
embedding back on the CPU. Ratio = peer ms / contender ms (above 1: faster than the peer).

Usage:
    python benchmarks/predict_latency.py [--quick] [--repeats N] [--warmup N] [--no-compile] [--json out.json]

``--quick`` runs the tiny variants of both encoders without compiling (about a minute on 2 cores).
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

import torch
import torch.nn as nn

from _table import format_table, load_average, machine
from peer_ve_conv import build_ve_conv
from s2f import ENCODERS, Speech2Face
from s2f.synth.sample_videos import speech

CLIP_SECONDS = 6.0
PEER_INPUT = (2, 257, 601)
TINY_CHANNELS = (8, 8, 16, 16, 16, 32, 32, 32, 32)
COLUMNS = (
    ("contender", "name", "{}"),
    ("runs as", "runs_as", "{}"),
    ("ms/clip", "ms", "{:.0f}"),
    ("x peer fp32 eager", "ratio", "{:.2f}"),
    ("first call s", "first_call_s", "{:.1f}"),
)


@dataclass
class Row:
    name: str
    runs_as: str
    ms: float
    ratio: float = 0.0
    first_call_s: float | None = None
    times_s: list[float] | None = None


def build_peer(quick: bool) -> tuple[nn.Module, str]:
    """The peer's VE_conv (peer_ve_conv.build_ve_conv); narrow widths in the quick mode."""
    if quick:
        return build_ve_conv(TINY_CHANNELS, hidden_dim=64, embed_dim=64), "peer_ve_conv.py"
    return build_ve_conv(), "peer_ve_conv.py"


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def contenders(args: argparse.Namespace) -> tuple[dict[str, tuple[str, Callable[[], object]]], dict[str, float]]:
    """Name -> (how it runs, one call); and the first-call seconds of the ones that compile."""
    torch.manual_seed(0)
    peer, source = build_peer(args.quick)
    peer.eval()
    spectrogram = torch.randn(1, *PEER_INPUT)
    encoder = ENCODERS.create("s2f_cnn_tiny" if args.quick else "s2f_cnn")
    model = Speech2Face(encoder, clip_seconds=CLIP_SECONDS).eval()
    clip = (torch.from_numpy(speech(CLIP_SECONDS, seed=0)), 16_000)
    wave = clip[0][None]

    def peer_call() -> object:
        with torch.no_grad():
            return peer(spectrogram)

    def forward_call() -> object:
        with torch.inference_mode():
            return model(wave)

    from s2f.model.inference import InferenceSettings

    fp32, compiled = InferenceSettings(inference_precision="fp32"), InferenceSettings(compile=True)
    default = model.predict(clip)  # prepares the default copy (untimed), and says what it runs as
    runs = {
        "peer fp32 eager": (f"VE_conv ({source}), fp32, NCHW, eager", peer_call),
        "s2f forward fp32": ("fp32, NCHW, eager", forward_call),
        "s2f predict fp32": ("fp32, channels-last, eager", lambda: model.predict(clip, settings=fp32)),
        "s2f predict default": (model.last_inference.describe(), lambda: model.predict(clip)),
    }
    first: dict[str, float] = {}
    if args.compile:
        first["s2f predict compiled"] = _time(lambda: model.predict(clip, settings=compiled))
        runs["s2f predict compiled"] = (model.last_inference.describe(), lambda: model.predict(clip, settings=compiled))
    del default
    return runs, first


def benchmark(args: argparse.Namespace) -> list[Row]:
    runs, first = contenders(args)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.warmup + args.repeats):
        for name, (_, call) in runs.items():
            seconds = _time(call)
            if round_ >= args.warmup:
                times[name].append(seconds)
    rows = [
        Row(name, runs_as, 1e3 * statistics.median(times[name]), first_call_s=first.get(name), times_s=times[name])
        for name, (runs_as, _) in runs.items()
    ]
    for row in rows:
        row.ratio = rows[0].ms / row.ms
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny encoders, no compiling, few rounds")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 7; quick: 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default: 2; quick: 1)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compiled contender")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine here")
    args = parser.parse_args(argv)
    if args.quick:
        args.compile = False
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    load_before = load_average()
    rows = benchmark(args)
    print(format_table(rows, COLUMNS))
    print(f"\nmachine: {json.dumps(machine())}")
    print(f"1-min load average before / after: {load_before:.2f} / {load_average():.2f} (others' work shows here)")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": [asdict(row) for row in rows]}, indent=2))
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

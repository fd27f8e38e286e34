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
- **s2f predict default, artefact**: ``predict(clip)`` of the model loaded back from a folder holding its fp32
  inference artefact (``s2f export MODEL --inference-artefact fp32``, :mod:`s2f.model.inference_artefact`):
  onnxruntime where the CPU has no native bf16, the bf16 row's PyTorch path where it has.
- **s2f predict int8 artefact**: ``predict(clip, settings=InferenceSettings(inference_precision="int8"))`` of the
  same folder holding its int8 artefact (static QDQ, per-channel weights, calibrated on 8 synthetic voices).

Before the rounds it prints the host's capabilities (instruction sets, native bf16/AMX, CUDA) and what
``auto`` picks. Each row also gets its spread (min-max over the rounds), its ratio to the eager fp32
``predict`` of the same run, its share of the same run's dense fp32 matmul rate (forward FLOPs, counted by
``torch.utils.flop_counter``, / time / rate), and its first call after a fresh ``from_pretrained`` (the
artefact rows: onnxruntime's session made then) against its steady median. The artefact rows also give
the worst cosine to eager fp32 over 8 voices (one speaker each) that no calibration heard, as the artefact's
writer measures it (about the calibration's mean; this model has none). The model's
batch norms are set to speech's statistics first, as training leaves them (fresh ones leave activations
unnormalised, which flatters int8).

``predict`` is timed whole: the clip (a tensor in memory) fitted to 6 s, the STFT, the encoder, the
embedding back on the CPU. Ratio = peer ms / contender ms (above 1: faster than the peer).

Usage:
    python benchmarks/predict_latency.py [--quick] [--repeats N] [--warmup N] [--no-compile] [--no-artefact]
        [--json out.json]

``--quick`` runs the tiny variants of both encoders without compiling (about a minute on 2 cores).
Without ``--no-artefact`` the paper-size run writes both artefacts first (about a minute and a half on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from _table import format_table, load_average, machine
from _timing import matmul_tflops
from peer_ve_conv import build_ve_conv
from s2f import ENCODERS, Speech2Face
from s2f.model.inference import InferenceSettings, bf16_supported, choose_precision
from s2f.synth.sample_videos import speech

CLIP_SECONDS = 6.0
PEER_INPUT = (2, 257, 601)
TINY_CHANNELS = (8, 8, 16, 16, 16, 32, 32, 32, 32)
# Voices for the artefact rows' agreement, and for the int8 calibration: seeds of their own, no speaker in both.
AGREEMENT_SEEDS, CALIBRATION_SEEDS = range(700, 708), range(800, 808)
COLUMNS = (
    ("contender", "name", "{}"),
    ("runs as", "runs_as", "{}"),
    ("ms/clip", "ms", "{:.0f}"),
    ("min-max ms", "spread", "{}"),
    ("x peer fp32 eager", "ratio", "{:.2f}"),
    ("x s2f eager fp32", "ratio_to_eager", "{:.2f}"),
    ("% fp32 matmul rate", "matmul_share", "{:.0%}"),
    ("first call s", "first_call_s", "{:.1f}"),
    ("first / steady", "first_over_steady", "{:.2f}"),
    ("min cosine", "min_cosine", "{:.5f}"),
)
EAGER = "s2f predict fp32"


@dataclass
class Row:
    name: str
    runs_as: str
    ms: float
    ratio: float = 0.0
    first_call_s: float | None = None
    times_s: list[float] | None = None
    spread: str = ""
    ratio_to_eager: float = 0.0
    matmul_share: float | None = None
    first_over_steady: float | None = None
    min_cosine: float | None = None


@dataclass
class Contenders:
    """Name -> (how it runs, one call); what is known of each row before the timed rounds."""

    runs: dict[str, tuple[str, Callable[[], object]]] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    cosine: dict[str, float] = field(default_factory=dict)
    forward_gflop: float = 0.0


def host_capabilities() -> dict[str, object]:
    """What decides the fastest path: instruction sets, native bf16 (AVX-512 BF16, AMX), int8 dot products, CUDA."""
    flags: set[str] = set()
    try:
        first_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        flags = {flag for line in first_cpu.splitlines() if line.startswith("flags") for flag in line.split()}
    except OSError:
        pass
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx2": "avx2" in flags,
        "avx512": sorted(flag for flag in flags if flag in {"avx512f", "avx512_bf16", "avx512_vnni"}),
        "vnni": sorted(flag for flag in flags if "vnni" in flag),
        "amx": sorted(flag for flag in flags if flag.startswith("amx")),
        "native_bf16": bf16_supported("cpu"),
        "cuda": torch.cuda.is_available(),
        "auto_picks": "{} ({})".format(*choose_precision("auto", "cpu")),
    }


def build_peer(quick: bool) -> tuple[nn.Module, str]:
    """The peer's VE_conv (peer_ve_conv.build_ve_conv); narrow widths in the quick mode."""
    if quick:
        return build_ve_conv(TINY_CHANNELS, hidden_dim=64, embed_dim=64), "peer_ve_conv.py"
    return build_ve_conv(), "peer_ve_conv.py"


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _speech_statistics(model: Speech2Face) -> Speech2Face:
    """The model with its batch norms at the statistics of speech (a plain average over 4 voices), as training
    leaves them."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.stack([torch.from_numpy(speech(CLIP_SECONDS, seed=seed)) for seed in range(900, 904)]))
    return model.eval()


def _forward_gflop(model: Speech2Face, wave: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(wave)
    return counter.get_total_flops() / 1e9


def contenders(args: argparse.Namespace, workdir: Path) -> Contenders:
    """The rows, prepared (untimed): models built, the artefacts written, first calls and agreement measured."""
    torch.manual_seed(0)
    peer, source = build_peer(args.quick)
    peer.eval()
    spectrogram = torch.randn(1, *PEER_INPUT)
    encoder = ENCODERS.create("s2f_cnn_tiny" if args.quick else "s2f_cnn")
    model = _speech_statistics(Speech2Face(encoder, clip_seconds=CLIP_SECONDS))
    clip = (torch.from_numpy(speech(CLIP_SECONDS, seed=0)), 16_000)
    wave = clip[0][None]
    found = Contenders(forward_gflop=_forward_gflop(model, wave))

    def peer_call() -> object:
        with torch.no_grad():
            return peer(spectrogram)

    def forward_call() -> object:
        with torch.inference_mode():
            return model(wave)

    fp32, compiled = InferenceSettings(inference_precision="fp32", artefact=False), InferenceSettings(compile=True)
    default = model.predict(clip)  # prepares the default copy (untimed), and says what it runs as
    found.runs = {
        "peer fp32 eager": (f"VE_conv ({source}), fp32, NCHW, eager", peer_call),
        "s2f forward fp32": ("fp32, NCHW, eager", forward_call),
        EAGER: ("fp32, channels-last, eager", lambda: model.predict(clip, settings=fp32)),
        "s2f predict default": (model.last_inference.describe(), lambda: model.predict(clip)),
    }
    found.first["s2f predict default"] = _first_call(lambda: model.save_pretrained(workdir / "model"), None, clip)
    if args.compile:
        found.first["s2f predict compiled"] = _time(lambda: model.predict(clip, settings=compiled))
        found.runs["s2f predict compiled"] = (
            model.last_inference.describe(), lambda: model.predict(clip, settings=compiled)
        )  # fmt: skip
    if args.artefact:
        _artefact_rows(found, workdir / "model", clip)
    del default
    return found


def _first_call(load: Callable[[], object], settings: InferenceSettings | None, clip: tuple) -> float:
    """Seconds of the first ``predict`` of a model freshly loaded from the folder ``load`` returns."""
    folder = load()
    fresh = Speech2Face.from_pretrained(folder)  # type: ignore[arg-type]
    return _time(lambda: fresh.predict(clip, settings=settings))


def _artefact_rows(found: Contenders, folder: Path, clip: tuple) -> None:
    from s2f.model.onnx import write_inference_artefact

    voices = [(torch.from_numpy(speech(CLIP_SECONDS, seed=seed)), 16_000) for seed in AGREEMENT_SEEDS]
    calibration = [(torch.from_numpy(speech(CLIP_SECONDS, seed=seed)), 16_000) for seed in CALIBRATION_SEEDS]
    start = time.perf_counter()
    # Written whatever their agreement (min_cosine=-1), to be measured: the writer's bar would refuse one short of it.
    _, found.cosine["s2f predict default, artefact"] = write_inference_artefact(
        folder, "fp32", check_audio=voices, min_cosine=-1.0
    )
    _, found.cosine["s2f predict int8 artefact"] = write_inference_artefact(
        folder, "int8", check_audio=voices, calibration_audio=calibration, min_cosine=-1.0
    )
    print(f"wrote the fp32 and int8 artefacts in {time.perf_counter() - start:.0f} s", flush=True)
    rows = {
        "s2f predict default, artefact": None,
        "s2f predict int8 artefact": InferenceSettings(inference_precision="int8"),
    }
    for name, settings in rows.items():
        found.first[name] = _first_call(lambda: folder, settings, clip)
        loaded = Speech2Face.from_pretrained(folder)
        loaded.predict(clip, settings=settings)
        found.runs[name] = (loaded.last_inference.describe(), lambda m=loaded, s=settings: m.predict(clip, settings=s))


def benchmark(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="s2f-latency-") as workdir:
        found = contenders(args, Path(workdir))
        times: dict[str, list[float]] = {name: [] for name in found.runs}
        for round_ in range(args.warmup + args.repeats):
            for name, (_, call) in found.runs.items():
                seconds = _time(call)
                if round_ >= args.warmup:
                    times[name].append(seconds)
    tflops = matmul_tflops(torch.device("cpu"), torch.float32, args.matmul_size)
    print(f"dense fp32 matmul ({args.matmul_size}^2) in this run: {tflops:.3f} TFLOP/s; forward "
          f"{found.forward_gflop:.1f} GFLOP")  # fmt: skip
    rows = []
    for name, (runs_as, _) in found.runs.items():
        ms = 1e3 * statistics.median(times[name])
        row = Row(name, runs_as, ms, first_call_s=found.first.get(name), times_s=times[name])
        row.spread = f"{1e3 * min(times[name]):.0f}-{1e3 * max(times[name]):.0f}"
        row.matmul_share = None if name.startswith("peer") else found.forward_gflop / ms / tflops
        row.first_over_steady = None if row.first_call_s is None else row.first_call_s / (ms / 1e3)
        row.min_cosine = found.cosine.get(name)
        rows.append(row)
    by_name = {row.name: row for row in rows}
    for row in rows:
        row.ratio = rows[0].ms / row.ms
        row.ratio_to_eager = by_name[EAGER].ms / row.ms
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny encoders, no compiling, few rounds")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 7; quick: 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default: 2; quick: 1)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the compiled contender")
    parser.add_argument("--no-artefact", dest="artefact", action="store_false", help="skip the artefact rows")
    parser.add_argument("--matmul-size", type=int, default=2048, help="the matmul rate's square size (2048)")
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
    print(f"host: {json.dumps(host_capabilities())}", flush=True)
    rows = benchmark(args)
    print(format_table(rows, COLUMNS))
    print(f"\nmachine: {json.dumps(machine())}")
    print(f"1-min load average before / after: {load_before:.2f} / {load_average():.2f} (others' work shows here)")
    if args.json:
        record = {"machine": machine(), "host": host_capabilities(), "rows": [asdict(row) for row in rows]}
        args.json.write_text(json.dumps(record, indent=2))
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

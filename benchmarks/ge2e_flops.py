"""What the frozen GE2E front end of ``s2f_ge2e`` costs: forward GFLOP per 1.6 s partial and per clip, and CPU time.

The d-vector is three LSTM layers of 256 run over each partial's 160 mel frames one after another,
then a linear layer; a clip's d-vector averages its half-overlapping partials (seven for 6 s).
Printed per input length:

* **GFLOP counted**: ``torch.utils.flop_counter.FlopCounterMode`` over the front end's forward
  (mel filters, LSTM, linear; a multiply-add counts 2). PyTorch's CPU LSTM kernel is one fused op
  that the counter may not see, so the LSTM is also counted by hand:
* **GFLOP, LSTM by formula**: ``2 x 4 x hidden x (input + hidden)`` per layer and frame (the four
  gates' input and recurrent matrix products), plus the linear layer's ``2 x 256 x 256`` per partial;
  elementwise gate arithmetic is left out, as the counter leaves it out elsewhere;
* **CPU ms/clip**: process CPU time of one forward under ``no_grad`` (the fastest of ``--repeats``),
  and the GFLOP/s that makes with the formula's count.

The weights do not change the count, so the network is built with random weights
(``load_pretrained=False``): resemblyzer need not be installed.

    python benchmarks/ge2e_flops.py [--seconds 1.6 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from _table import format_table, load_average, machine
from s2f.encoders.speaker_frontend import PARTIAL_FRAMES, SpeakerFrontendEncoder, partial_starts

__all__ = ["lstm_gflop", "main", "measure"]

HOP_S = 0.01  # GE2E's 10 ms hop: frames per second of input
FFT_BINS = 201  # its 400-point FFT


def lstm_gflop(partials: int, hidden: int = 256, layers: int = 3, inputs: int = 40, dvector: int = 256) -> float:
    """Forward GFLOP of ``partials`` partials by the formula: every gate's input and recurrent matmul, then the linear.

    >>> round(lstm_gflop(1), 3)  # one 1.6 s partial of GE2E
    0.433
    """
    per_frame = sum(2 * 4 * hidden * ((inputs if layer == 0 else hidden) + hidden) for layer in range(layers))
    return partials * (PARTIAL_FRAMES * per_frame + 2 * hidden * dvector) / 1e9


def measure(seconds: float, repeats: int) -> dict[str, float]:
    """Counted and formula GFLOP, and CPU ms, of the front end on one clip of ``seconds``."""
    encoder = SpeakerFrontendEncoder(load_pretrained=False).eval()
    frames = max(PARTIAL_FRAMES, round(seconds / HOP_S) - 2)  # a 6 s clip gives 598 STFT frames
    spec = torch.randn(1, 2, frames, FFT_BINS, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            encoder.dvector(spec)
        cpu_s = []
        for _ in range(repeats):
            began = time.process_time()
            encoder.dvector(spec)
            cpu_s.append(time.process_time() - began)
    partials = len(partial_starts(frames))
    formula = lstm_gflop(partials)
    return {
        "seconds": seconds,
        "frames": frames,
        "partials": partials,
        "gflop_counted": counter.get_total_flops() / 1e9,
        "gflop_formula": formula,
        "cpu_ms": min(cpu_s) * 1e3,
        "gflop_per_cpu_s": formula / min(cpu_s),
    }


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.6, 6.0], help="input lengths")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = [measure(seconds, args.repeats) for seconds in args.seconds]
    host = machine()
    threads = torch.get_num_threads()
    print(f"# {host['cpu']} ({host['cores']} cores), torch {host['torch']}, {threads} thread(s)", end="")
    print(f", load average {load_average():.2f}")
    columns = [
        ("input s", "seconds", "{:g}"),
        ("frames", "frames", "{}"),
        ("partials", "partials", "{}"),
        ("GFLOP counted", "gflop_counted", "{:.3f}"),
        ("GFLOP, LSTM by formula", "gflop_formula", "{:.3f}"),
        ("CPU ms/clip", "cpu_ms", "{:.0f}"),
        ("GFLOP per CPU-s", "gflop_per_cpu_s", "{:.1f}"),
    ]
    print(format_table(results, columns))
    return results


if __name__ == "__main__":
    main()

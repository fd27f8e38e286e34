"""How ``s2f serve`` holds up under concurrent users: 8 clients x 5 requests on loopback, p50/p95 latency.

The server answers one request at a time (Gradio's queue, concurrency 1), so concurrent users wait
their turn: what matters is that every request is answered (none lost, none an error) and how long
the wait grows. A latency here is one client's whole request as a user sees it: upload of the wav,
the queue, the prediction with its face, cartoon, nearest faces and spectrogram, and the answer.

    python benchmarks/serve_load.py                                   # the demo's model and gallery (runs/demo)
    python benchmarks/serve_load.py --model runs/pd/model --gallery runs/pd/shards
    python benchmarks/serve_load.py --url http://127.0.0.1:7860/      # a server already running
    python benchmarks/serve_load.py --quick                           # 2 x 2 on a tiny untrained model: a smoke test

Prints the table and the machine; never fails on timing (it exits non-zero only when a request is lost).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from _table import format_table, machine

SAMPLE_RATE = 16_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/demo/model", help="saved model folder (default: the demo's)")
    parser.add_argument("--gallery", default="runs/demo/shards", help="gallery shards (default: the demo's)")
    parser.add_argument("--url", help="load a server that is already running instead of starting one")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--requests", type=int, default=5, help="requests per client (default 5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each voice sent (default 4 s)")
    parser.add_argument("--quick", action="store_true", help="2 clients x 2 requests on a tiny untrained model")
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs the benchmark; returns the figures it printed."""
    options = _parser().parse_args(argv)
    if options.quick:
        options.clients, options.requests = 2, 2
    with tempfile.TemporaryDirectory(prefix="s2f-serve-load-") as scratch:
        folder = Path(scratch)
        voices = [_voice(folder / f"voice{i}.wav", 100.0 + 25 * i, options.seconds) for i in range(options.clients)]
        with _server(options, folder) as url:
            from gradio_client import Client, handle_file

            Client(url, verbose=False).predict(handle_file(str(voices[0])), api_name="/predict")  # warm-up

            def client(voice: Path) -> list[tuple[float, bool]]:
                connection = Client(url, verbose=False)
                timings = []
                for _ in range(options.requests):
                    start = time.perf_counter()
                    try:
                        answer = connection.predict(handle_file(str(voice)), api_name="/predict")
                        answered = 'id="s2f-face"' in answer
                    except Exception:  # a lost request is what this benchmark counts, not a reason to stop
                        answered = False
                    timings.append((time.perf_counter() - start, answered))
                return timings

            start = time.perf_counter()
            with ThreadPoolExecutor(options.clients) as pool:
                results = [timing for timings in pool.map(client, voices) for timing in timings]
            wall = time.perf_counter() - start
    latencies = np.array([seconds for seconds, answered in results if answered])
    figures = {
        "clients": options.clients,
        "requests": len(results),
        "answered": len(latencies),
        "lost": len(results) - len(latencies),
        "p50_s": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "p95_s": float(np.percentile(latencies, 95)) if len(latencies) else float("nan"),
        "max_s": float(latencies.max()) if len(latencies) else float("nan"),
        "answers_per_s": len(latencies) / wall,
    }
    columns = [("clients", "clients", "{}"), ("requests", "requests", "{}"), ("answered", "answered", "{}"),
               ("lost", "lost", "{}"), ("p50 s", "p50_s", "{:.2f}"), ("p95 s", "p95_s", "{:.2f}"),
               ("max s", "max_s", "{:.2f}"), ("answers/s", "answers_per_s", "{:.2f}")]  # fmt: skip
    print(format_table([figures], columns))
    print(f"machine: {machine()}")
    return figures


@contextlib.contextmanager
def _server(options: argparse.Namespace, folder: Path) -> Iterator[str]:
    """The URL of the server to load: the one given, or ``s2f serve`` started here on a free loopback port."""
    if options.url:
        yield options.url
        return
    model, gallery = Path(options.model), Path(options.gallery)
    if options.quick:
        model, gallery = _tiny_model(folder / "model"), None
    elif not (model / "config.json").is_file():
        raise SystemExit(f"no model in {model}: run `s2f demo` first, or give --model DIR [--gallery SHARDS]")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "s2f", "serve", "--model", str(model), "--port", str(port)]
    if gallery is not None and gallery.is_dir():
        command += ["--gallery", str(gallery)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ)
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            print(line.rstrip())
            if "listening on" in line:
                break
        else:
            raise SystemExit("s2f serve stopped before it listened")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _tiny_model(folder: Path) -> Path:
    from s2f import DECODERS, ENCODERS, Speech2Face

    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), DECODERS.create("linear_face_decoder_tiny"), clip_seconds=3)
    return model.save_pretrained(folder)


def _voice(path: Path, pitch: float, seconds: float) -> Path:
    """A vowel-like buzz: harmonics of ``pitch`` under a slow loudness contour; one pitch per client."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * pitch * h * t) / h for h in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, (0.2 * wave).astype(np.float32), SAMPLE_RATE)
    return path


if __name__ == "__main__":
    raise SystemExit(1 if main()["lost"] else 0)

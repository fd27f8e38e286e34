"""``s2f serve`` under 8 concurrent worst-case uploads: the server's peak memory, and the next good voice.

Three kinds of upload, each within the 50 MB limit and each costly if decoded whole:

- ``hour.mp3``: an hour of speech-like audio at 8 kbps (3.6 MB). Its header tells the truth, so the
  length check refuses it before decoding.
- ``lying.aac``: ADTS AAC, 3 s at 320 kbps, then an hour at 8 kbps. A raw AAC stream has no length
  field, so FFmpeg estimates it from the first frames' bitrate: the header check sees minutes and lets
  it through, and libsndfile cannot read AAC, so FFmpeg decodes it. The server used to decode the
  whole hour; now it decodes the clip. (An mp3 head on a low-bitrate body lies the same way to
  FFmpeg, but libsndfile reads mp3 first and stops where its own estimate ends.)
- ``float96k.wav``: 96 kHz float32 mono, 45 MB (2 minutes).

The script starts ``s2f serve`` on loopback, sends one good voice (warm-up), reads the server's
resident memory, sends 8 hostile uploads at once (the three kinds in turn), then one good voice, and
reads the server's peak resident memory (``VmHWM``) from /proc. Each file's own decoding cost is also
measured in a fresh process, the old way (``load_audio``, everything) and the way every entry point
decodes now (``load_clip``: the clip and a second).

    python benchmarks/serve_hostile_uploads.py            # the hour-long files, a tiny untrained model
    python benchmarks/serve_hostile_uploads.py --quick    # 5-minute files, 2 uploads: a smoke test (about 1 min)

Exits non-zero if the server's peak grew by more than ``--bound-mb`` over its warm resident memory, if a
hostile upload crashed the server, or if the good voice afterwards got no face. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from _table import format_table, machine
from serve_load import _server, _voice

RATE = 16_000
# Worst case on paper: 8 uploads in the server's upload folder and buffers (at most 50 MB each while
# received), one request decoding its clip at a time (Gradio's queue), and the PNG and face it draws.
BOUND_MB = 600.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=8, help="concurrent hostile uploads (default 8)")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the mp3 files (default 60)")
    parser.add_argument("--wav-mb", type=float, default=45.0, help="size of the 96 kHz wav (default 45 MB)")
    parser.add_argument("--bound-mb", type=float, default=BOUND_MB, help=f"allowed growth (default {BOUND_MB:g})")
    parser.add_argument("--quick", action="store_true", help="5-minute mp3s, a 5 MB wav, 2 uploads")
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs the benchmark; returns the figures it printed."""
    options = _parser().parse_args(argv)
    if options.quick:
        options.uploads, options.minutes, options.wav_mb = 2, 5.0, 5.0
    with tempfile.TemporaryDirectory(prefix="s2f-hostile-") as scratch:
        folder = Path(scratch)
        # Each upload its own bytes: Gradio stores identical uploads as one file (see the README's note).
        sent = [_hostile_file(folder, i, options.minutes, options.wav_mb) for i in range(options.uploads)]
        kinds = {path.suffix: path for path in sent}
        decoding = {suffix: _decode_cost(path) for suffix, path in kinds.items()}
        sizes = {suffix: path.stat().st_size / 2**20 for suffix, path in kinds.items()}
        good = _voice(folder / "good.wav", 120.0, 4.0)
        server = argparse.Namespace(url=None, model="", gallery="", quick=True)
        with _server(server, folder) as url:
            from gradio_client import Client, handle_file

            pid = _server_pid(url)
            Client(url, verbose=False).predict(handle_file(str(good)), api_name="/predict")
            warm_mb = _status_mb(pid, "VmRSS")
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) restarts from here

            def upload(path: Path) -> str:
                try:
                    answer = Client(url, verbose=False).predict(handle_file(str(path)), api_name="/predict")
                except Exception as exc:  # what the server did with it is what this measures
                    return f"error: {type(exc).__name__}"
                return "face" if 'id="s2f-face"' in answer else "refused: " + re.sub(r"<[^>]+>", "", answer).strip()

            start = time.perf_counter()
            with ThreadPoolExecutor(options.uploads) as pool:
                outcomes = list(pool.map(upload, sent))
            wall = time.perf_counter() - start
            peak_mb = _status_mb(pid, "VmHWM")
            after = Client(url, verbose=False).predict(handle_file(str(good)), api_name="/predict")
    figures = {
        "uploads": options.uploads,
        "faces": outcomes.count("face"),
        "refused": sum(o.startswith("refused") for o in outcomes),
        "errors": sum(o.startswith("error") for o in outcomes),
        "wall_s": wall,
        "warm_rss_mb": warm_mb,
        "peak_rss_mb": peak_mb,
        "growth_mb": peak_mb - warm_mb,
        "next_good_answered": float('id="s2f-face"' in after),
    }
    _report(kinds, sizes, decoding, sent, outcomes, figures, options.bound_mb)
    return figures


def _report(kinds, sizes, decoding, sent, outcomes, figures, bound_mb) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"file": path.name, "mb": sizes[suffix], "seconds": decoding[suffix][0], "all_mb": decoding[suffix][1],
         "clip_mb": decoding[suffix][2]}
        for suffix, path in kinds.items()
    ]  # fmt: skip
    print("Each kind decoded in a fresh process: peak RSS above the process's own once imported and warm")
    per_file = [("file", "file", "{}"), ("size MB", "mb", "{:.1f}"), ("audio s", "seconds", "{:.0f}"),
                ("load_audio (all) MB", "all_mb", "{:.0f}"), ("load_clip (6 s) MB", "clip_mb", "{:.0f}")]  # fmt: skip
    print(format_table(rows, per_file))
    print("\nuploads sent at once:")
    for path, outcome in zip(sent, outcomes, strict=True):
        print(f"  {path.name}: {outcome}")
    columns = [("uploads", "uploads", "{}"), ("faces", "faces", "{}"), ("refused", "refused", "{}"),
               ("errors", "errors", "{}"), ("wall s", "wall_s", "{:.1f}"), ("warm RSS MB", "warm_rss_mb", "{:.0f}"),
               ("peak RSS MB", "peak_rss_mb", "{:.0f}"), ("growth MB", "growth_mb", "{:.0f}"),
               ("next good voice", "next_good_answered", "{:.0f}")]  # fmt: skip
    print(format_table([figures], columns))
    print(f"bound: peak growth <= {bound_mb:g} MB over the warm server")
    print(f"machine: {machine()}")


def _hostile_file(folder: Path, index: int, minutes: float, wav_mb: float) -> Path:
    """Upload ``index``: an honest hour of mp3, an AAC stream whose length estimate lies, or a 96 kHz float wav."""
    kind = index % 3
    # The same minute repeated keeps the encoders' time small; a head of its own makes each file unique.
    head, minute, repeats = _speech(3.0, 100 + index), _speech(60.0, 1), max(1, round(minutes))
    if kind == 0:
        path = folder / f"hour{index}.mp3"
        path.write_bytes(_encoded(head, 8_000, "mp3") + _cached(folder, "mp3", minute) * repeats)
    elif kind == 1:
        path = folder / f"lying{index}.aac"
        path.write_bytes(_encoded(head, 320_000, "adts") + _cached(folder, "adts", minute) * repeats)
    else:
        path = folder / f"float96k{index}.wav"
        sf.write(path, _speech(wav_mb * 2**20 / (96_000 * 4), 200 + index, rate=96_000), 96_000, subtype="FLOAT")
    return path


def _cached(folder: Path, container: str, samples: np.ndarray) -> bytes:
    cache = folder / f"minute.{container}"
    if not cache.is_file():
        cache.write_bytes(_encoded(samples, 8_000, container))
    return cache.read_bytes()


def _speech(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.15 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _encoded(samples: np.ndarray, bit_rate: int, container: str) -> bytes:
    """Bare frames: mp3 without a Xing/Info header or ID3 tag, or ADTS AAC; either concatenates into one stream."""
    import av

    buffer = io.BytesIO()
    options = {"write_xing": "0", "id3v2_version": "0"} if container == "mp3" else {}
    with av.open(buffer, "w", format=container, options=options) as out:
        stream = out.add_stream("mp3" if container == "mp3" else "aac", rate=RATE)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        for start in range(0, samples.size, 1152 * 32):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1152 * 32], format="flt", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


_DECODE = """
import sys
from pathlib import Path
from s2f.audio import load_audio, load_clip
def status(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024
load_clip(sys.argv[2], 1.0)  # imports and the codec's set-up, the same for both ways
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from here
base = status("VmRSS")
wave = load_clip(sys.argv[2], 6.0) if sys.argv[1] == "clip" else load_audio(sys.argv[2])
print(wave.numel() / 16000, status("VmHWM") - base)
"""


def _decode_cost(path: Path) -> tuple[float, float, float]:
    """(seconds of audio, peak MB decoding all of it, peak MB decoding the clip), each in a fresh process."""
    results = []
    for how in ("all", "clip"):
        out = subprocess.run(
            [sys.executable, "-c", _DECODE, how, str(path)], capture_output=True, text=True, check=True, env=os.environ
        )
        results.append([float(x) for x in out.stdout.split()])
    return results[0][0], results[0][1], results[1][1]


def _server_pid(url: str) -> int:
    """The pid of the process listening on the URL's port (the server _server started)."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    inode_of = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inode_of[fields[9]] = True
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if any(link.startswith("socket:[") and link[8:-1] in inode_of for link in links):
            return int(proc.name)
    raise SystemExit(f"no process listens on port {port}")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/{pid}/status has no {field}")


def _verdict(figures: dict[str, float], bound_mb: float) -> int:
    failed = figures["errors"] or not figures["next_good_answered"] or figures["growth_mb"] > bound_mb
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    arguments = sys.argv[1:]
    result = main(arguments)
    raise SystemExit(_verdict(result, _parser().parse_args(arguments).bound_mb))

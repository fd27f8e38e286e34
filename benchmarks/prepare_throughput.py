"""Throughput of ``s2f prepare`` on a corpus of real video files it builds itself, and where the time goes.

The corpus: 720p MPEG-4 videos at 25 fps with a key frame every second and AAC audio at 48 kHz (as
downloaded videos come), each showing one of the bundled portraits (face boxes of about 100-220 px)
and speaking with a synthetic voice for 8 s; an AVSpeech-style CSV lists a 6 s segment of each,
starting 0-2 s in, with the face centre. Preparing it runs the real pipeline end to end (seek and
decode in DataLoader workers, MTCNN, dlib landmarks, alignment, teacher embedding, FLAC/JPEG
encoding, shard writing) and reports:

* clips per second, and per CPU core (this process's cores);
* seconds per clip in each stage -- decode (workers), detect (MTCNN + landmarks + alignment),
  embed (teacher), write (encoding and chunk files) -- summed over processes, so on several cores
  they add up to more than the wall time;
* bytes per stored clip, part by part, against the paper's precomputed spectrogram
  (598 x 257 x 2 float32 = 1,229,488 bytes).

Timings on a shared machine only get slower, never faster, so the script runs the corpus
``--repeats`` times into fresh folders and reports the fastest run.

Usage:
    python benchmarks/prepare_throughput.py [--quick] [--clips N] [--teacher dlib_resnet]
        [--workers N] [--batch-size N] [--repeats N] [--corpus DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from _table import format_table
from s2f.data import iter_records, read_manifest
from s2f.prepare import STAGES, prepare
from s2f.prepare.sources import read_avspeech
from s2f.synth.sample_videos import compose_frame, speech, write_video

__all__ = ["Report", "build_corpus", "main", "measure_storage"]

PAPER_SPECTROGRAM_BYTES = 598 * 257 * 2 * 4
WIDTH, HEIGHT = 1280, 720


@dataclass
class Report:
    """One benchmark run, as printed and written to JSON."""

    clips: int
    written: int
    seconds: float
    clips_per_s: float
    cores: int
    clips_per_s_per_core: float
    stage_s_per_clip: dict[str, float]
    storage: dict[str, float]
    settings: dict[str, object] = field(default_factory=dict)


def build_corpus(root: Path, clips: int, *, seed: int = 0, fps: int = 25) -> Path:
    """Writes ``clips`` talking-head videos and an AVSpeech CSV under ``root``; returns the CSV."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(clips):
        name = ("astronaut", "grace_hopper")[index % 2]
        height = int(rng.integers(560, 720)) if name == "astronaut" else int(rng.integers(300, 720))
        width_of = height * (512 / 512 if name == "astronaut" else 512 / 600)
        left = int(rng.integers(0, WIDTH - int(width_of)))
        top = int(rng.integers(0, HEIGHT - height + 1))
        frame, (box,) = compose_frame([(name, (left, top), height)], size=(WIDTH, HEIGHT), seed=index)
        video_id = f"vid{index:05d}"
        write_video(root / "videos" / f"{video_id}.mp4", frame, speech(8.0, seed=index), fps=fps)
        start = float(rng.uniform(0.0, 2.0))
        cx, cy = (box[0] + box[2]) / 2 / WIDTH, (box[1] + box[3]) / 2 / HEIGHT
        rows.append((video_id, f"{start:.6f}", f"{start + 6.0:.6f}", f"{cx:.6f}", f"{cy:.6f}"))
    path = root / "avspeech.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def measure_storage(root: Path) -> dict[str, float]:
    """Average stored bytes per clip, by field and in total (chunk files on disk)."""
    manifest = read_manifest(root)
    parts: dict[str, list[int]] = {"audio": [], "face": [], "embedding": [], "landmarks": [], "seconds": []}
    import io

    import soundfile
    from PIL import Image

    for split in manifest.splits:
        for record in iter_records(root, split):
            buffer = io.BytesIO()
            soundfile.write(buffer, record.audio, 16_000, format="FLAC", subtype="PCM_16")
            parts["audio"].append(len(buffer.getvalue()))
            buffer = io.BytesIO()
            Image.fromarray(record.face).save(buffer, format="JPEG", quality=95)
            parts["face"].append(len(buffer.getvalue()))
            parts["embedding"].append(record.embedding.nbytes)
            parts["landmarks"].append(record.landmarks.nbytes)
            parts["seconds"].append(record.audio.size / 16_000)
    on_disk = sum(path.stat().st_size for path in root.glob("*/chunk-*.bin"))
    clips = max(1, manifest.num_clips)
    result = {name: float(np.mean(values)) if values else 0.0 for name, values in parts.items()}
    result["total_on_disk"] = on_disk / clips
    result["paper_spectrogram"] = float(PAPER_SPECTROGRAM_BYTES)
    result["ratio_vs_paper"] = PAPER_SPECTROGRAM_BYTES / result["total_on_disk"] if on_disk else 0.0
    return result


def run_once(csv_path: Path, out: Path, args: argparse.Namespace) -> Report:
    tasks = read_avspeech(csv_path, csv_path.parent / "videos")
    began = time.perf_counter()
    summary = prepare(
        tasks,
        out,
        args.teacher,
        teacher_weights=args.teacher_weights,
        batch_size=args.batch_size,
        num_workers=args.workers,
        part_size=args.part_size,
        landmarks=args.landmarks,
        progress=False,
        overwrite=True,
    )
    seconds = time.perf_counter() - began
    processed = max(1, summary.processed)
    return Report(
        clips=summary.processed,
        written=sum(summary.written.values()),
        seconds=seconds,
        clips_per_s=summary.processed / seconds,
        cores=summary.cores,
        clips_per_s_per_core=summary.processed / seconds / summary.cores,
        stage_s_per_clip={stage: summary.timings.get(stage, 0.0) / processed for stage in STAGES},
        storage=measure_storage(out),
        settings={
            "teacher": args.teacher,
            "workers": args.workers,
            "batch_size": args.batch_size,
            "landmarks": args.landmarks,
            "torch_threads": torch.get_num_threads(),
        },
    )


def print_report(report: Report) -> None:
    print(f"\ns2f prepare on {report.clips} clips of 720p video ({report.written} written), best run:")
    per_core = report.clips_per_s_per_core
    print(f"  {report.clips_per_s:.2f} clips/s = {per_core:.2f} clips/s per core ({report.cores} cores)")
    total = sum(report.stage_s_per_clip.values())
    stages = [
        {"stage": stage, "seconds": value, "share": value / total if total else 0.0}
        for stage, value in report.stage_s_per_clip.items()
    ]
    print(
        format_table(stages, [("stage", "stage", "{}"), ("s/clip", "seconds", "{:.3f}"), ("share", "share", "{:.0%}")])
    )
    storage = report.storage
    print(f"storage per clip ({storage['seconds']:.1f} s of audio):")
    fields = [
        {"field": name, "kb": storage[name] / 1000}
        for name in ("audio", "face", "embedding", "landmarks", "total_on_disk")
    ]
    print(format_table(fields, [("field", "field", "{}"), ("KB", "kb", "{:.1f}")]))
    print(
        f"    paper's spectrogram {storage['paper_spectrogram'] / 1e6:.2f} MB alone: "
        f"{storage['ratio_vs_paper']:.1f}x the whole row here"
    )


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 clips, one run")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--teacher", default="dlib_resnet")
    parser.add_argument("--teacher-weights")
    parser.add_argument("--landmarks", default="auto", choices=("auto", "dlib68", "mtcnn5"))
    parser.add_argument("--workers", type=int, default=max(0, min(8, (os.cpu_count() or 1) - 1)))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--part-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--corpus", type=Path, help="build (or reuse) the corpus here instead of a temporary folder")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.repeats = 8, 1
    work = Path(tempfile.mkdtemp(prefix="s2f-prepare-bench-"))
    try:
        corpus = args.corpus or work / "corpus"
        csv_path = corpus / "avspeech.csv"
        if not csv_path.is_file():
            began = time.perf_counter()
            build_corpus(corpus, args.clips)
            print(f"built {args.clips} videos in {time.perf_counter() - began:.1f} s under {corpus}")
        reports = [run_once(csv_path, work / f"shards{repeat}", args) for repeat in range(args.repeats)]
        best = max(reports, key=lambda report: report.clips_per_s)
        print_report(best)
        if args.json:
            machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__}
            payload = {"machine": machine, "best": asdict(best), "runs": [asdict(r) for r in reports]}
            args.json.write_text(json.dumps(payload, indent=2))
        return best
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()

"""The corpus that ``s2f prepare`` is tested on: real mp4 files, one per way a clip can go right or wrong.

``build_corpus`` writes the videos and an AVSpeech-style CSV; ``EXPECTED`` says what must happen to each
clip. The prepare tests, the fault-injection suites (kills, disk faults, repair) and the multi-node
launch test all start from it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from s2f.data import ClipRecord, iter_records, read_manifest
from s2f.synth.sample_videos import compose_frame, speech, write_video

SR = 16_000
W, H = 640, 480

# clip id -> what must happen to it.
EXPECTED = {
    "astro-01_x_1.000_7.500": "written",
    "hopper_02_10.000_15.000": "written",
    "two_faces_0.500_6.500": "written",
    "two_faces_0.000_6.000": "face_not_at_center",
    "astro-01_x_0.000_2.000": "too_short",
    "empty_0.000_6.000": "no_face",
    "small_0.000_6.000": "face_too_small",
    "silent_0.000_6.000": "silent",
    "short_0.000_6.000": "too_short",
    "noaudio_0.000_6.000": "no_audio",
    "broken_0.000_6.000": "undecodable",
    "gone_0.000_6.000": "video_missing",
}


def centre(box: tuple[float, ...], width: int, height: int) -> tuple[float, float]:
    return (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height


def build_corpus(root: Path) -> Path:
    """Real mp4 files (MPEG-4 + AAC at 48 kHz) and an AVSpeech-style CSV naming them; returns the CSV."""
    videos = root / "videos"
    astro, (astro_box,) = compose_frame([("astronaut", (100, 0), 480)], size=(W, H))
    hopper, _ = compose_frame([("grace_hopper", (150, 20), 440)], size=(W, H))
    two, (_, hopper_box) = compose_frame([("astronaut", (10, 60), 400), ("grace_hopper", (420, 30), 420)], (800, H))
    small, (small_box,) = compose_frame([("astronaut", (200, 100), 240)], size=(W, H))
    empty, _ = compose_frame([], size=(W, H))
    write_video(videos / "astro-01_x.mp4", astro, speech(8.0, seed=1), fps=10)
    # A pre-cut segment of a longer video, named ID_START_END as segment downloaders do.
    write_video(videos / "hopper_02_10.000000_15.000000.mp4", hopper, speech(5.0, seed=2), fps=10)
    write_video(videos / "two_faces.mp4", two, speech(7.0, seed=3), fps=10)
    write_video(videos / "empty.mp4", empty, speech(7.0, seed=4), fps=10)
    write_video(videos / "small.mp4", small, speech(7.0, seed=5), fps=10)
    write_video(videos / "silent.mp4", astro, np.zeros(7 * SR, np.float32), fps=10)
    write_video(videos / "short.mp4", astro, speech(1.0, seed=6), fps=10)
    write_video(videos / "noaudio.mp4", astro, None, seconds=7.0, fps=10)
    whole = (videos / "astro-01_x.mp4").read_bytes()
    (videos / "broken.mp4").write_bytes(whole[: len(whole) // 2])  # a download cut short
    a, h = centre(astro_box, W, H), centre(hopper_box, 800, H)
    rows = [
        ("astro-01_x", 1.0, 7.5, *a),
        ("hopper_02", 10.0, 15.0, 0.5, 0.5),
        ("two_faces", 0.5, 6.5, *h),
        ("two_faces", 0.0, 6.0, 0.5, 0.95),
        ("astro-01_x", 0.0, 2.0, *a),
        ("empty", 0.0, 6.0, 0.5, 0.5),
        ("small", 0.0, 6.0, *centre(small_box, W, H)),
        ("silent", 0.0, 6.0, *a),
        ("short", 0.0, 6.0, *a),
        ("noaudio", 0.0, 6.0, *a),
        ("broken", 0.0, 6.0, *a),
        ("gone", 0.0, 6.0, *a),
    ]
    path = root / "avspeech.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([(row[0], *(f"{v:.6f}" for v in row[1:])) for row in rows])
    return path


def cli_args(corpus: Path, out: Path) -> list[str]:
    return ["--avspeech", str(corpus / "avspeech.csv"), "--videos", str(corpus / "videos"), "--out", str(out)]


def records(root: Path) -> dict[str, ClipRecord]:
    rows = [r for split in read_manifest(root).splits for r in iter_records(root, split)]
    by_id = {r.clip_id: r for r in rows}
    assert len(by_id) == len(rows), "a clip is in the shards twice"
    return by_id


def start_prepare(corpus: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "s2f", "prepare", *cli_args(corpus, out), "--teacher", "dlib_resnet"]
    command += ["--no-progress", "--workers", "0", "--batch-size", "1", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def committed_parts(out: Path) -> int:
    return len(list((out / ".s2f_prepare" / "parts").glob("*/done.json")))

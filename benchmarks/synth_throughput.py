"""What one clip of `s2f synth` costs, stage by stage, in CPU time of one process.

CPU time (``time.process_time``) rather than wall time, so that the figures hold on a machine that
other jobs share; the projection divides by the cores a run would use. Prints, per stage, the
milliseconds per call, its share of a clip, and the projected core-seconds and wall-seconds of the
default (300 x 3 x 6 s) and quick (60 x 2 x 3 s) worlds, with mp4 against wav + jpg.

Two choices are measured against what they replaced, in the same run on the same clips:

- the mp4's sound coded by FFmpeg's ``fast`` AAC coder (as shipped) and by its default ``twoloop``
  search, with each file's size and the signal-to-noise ratio of its decoded sound against the voice;
- each consonant's band-pass designed once per band (``s2f.synth.voice._band_pass`` is cached, as
  shipped) and designed anew for every consonant, which gives the same samples (checked).

    HF_HUB_OFFLINE=1 python benchmarks/synth_throughput.py [--identities 12] [--cores 2] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import scipy.signal

from _table import format_table
from s2f.audio import load_clip
from s2f.synth import voice
from s2f.synth.face_sources import load_bank
from s2f.synth.morph import Morpher
from s2f.synth.video import write_mp4, write_wav_jpg
from s2f.synth.voice import SAMPLE_RATE, synthesize_speech
from s2f.synth.world import draw_identities, render_backdrop, render_view

WORLDS = {"default": (300, 3, 6.0), "quick": (60, 2, 3.0)}


def timed(spent: dict[str, float], name: str, action: Callable[[], Any]) -> Any:
    began = time.process_time()
    result = action()
    spent[name] = spent.get(name, 0.0) + time.process_time() - began
    return result


def _band_designed_every_time(low: float, high: float) -> np.ndarray:
    return scipy.signal.butter(2, [low, high], btype="band", fs=SAMPLE_RATE, output="sos")


def snr_db(written: np.ndarray, path: Path) -> float:
    """The mp4's decoded sound against the voice written into it (FFmpeg's AAC decoder adds no delay here)."""
    decoded = load_clip(path, sample_rate=SAMPLE_RATE).numpy().astype(np.float64)
    length = min(written.size, decoded.size)
    error = decoded[:length] - written[:length]
    return float(10 * np.log10(np.sum(written[:length].astype(np.float64) ** 2) / max(np.sum(error**2), 1e-20)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--identities", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="2 identities: a smoke test")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.identities = 2
    spent: dict[str, float] = {}
    bank = timed(spent, "load bank (cached)", lambda: load_bank(args.cache_dir))
    morpher = timed(spent, "morpher setup", lambda: Morpher(bank))
    specs = draw_identities(morpher, args.identities, 0, 0.2)
    calls = {"morph": 0, "clip": 0}
    sizes: dict[str, list[int]] = {}
    snrs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for spec in specs:
            face = timed(spent, "morph", lambda spec=spec: morpher.render(spec.morph))
            backdrop = timed(spent, "backdrop", lambda spec=spec: render_backdrop(spec))
            calls["morph"] += 1
            for clip in range(3):
                rng = np.random.default_rng([spec.index, clip])
                frame = timed(spent, "view", lambda: render_view(face, backdrop, spec, rng))  # noqa: B023
                voice_seed = [spec.index, clip, 1]
                with mock.patch.object(voice, "_band_pass", _band_designed_every_time):
                    before = timed(
                        spent, "speech 6 s, each band designed anew",
                        lambda: synthesize_speech(spec.voice, 6.0, np.random.default_rng(voice_seed)),  # noqa: B023
                    )  # fmt: skip
                audio = timed(
                    spent,
                    "speech 6 s",
                    lambda: synthesize_speech(spec.voice, 6.0, np.random.default_rng(voice_seed)),  # noqa: B023
                )
                if audio.tobytes() != before.tobytes():
                    raise AssertionError("designing each band once changed the voice's samples")
                target = Path(folder) / f"{spec.index}_{clip}"
                timed(spent, "mp4 6 s", lambda: write_mp4(target.with_suffix(".mp4"), frame, audio))  # noqa: B023
                twoloop = target.with_name(target.name + "_twoloop.mp4")
                timed(
                    spent, "mp4 6 s, AAC twoloop",
                    lambda: write_mp4(twoloop, frame, audio, aac_coder="twoloop"),  # noqa: B023
                )  # fmt: skip
                for coder, path in (("fast", target.with_suffix(".mp4")), ("twoloop", twoloop)):
                    sizes.setdefault(coder, []).append(path.stat().st_size)
                    snrs.setdefault(coder, []).append(snr_db(audio, path))
                timed(spent, "wav + jpg 6 s", lambda: write_wav_jpg(target.with_suffix(".wav"), frame, audio))  # noqa: B023
                calls["clip"] += 1
    per = {
        name: seconds / (calls["morph"] if name in ("morph", "backdrop") else calls["clip"])
        for name, seconds in spent.items()
        if name not in ("load bank (cached)", "morpher setup")
    }
    clip_mp4 = per["view"] + per["speech 6 s"] + per["mp4 6 s"]
    clip_wav = per["view"] + per["speech 6 s"] + per["wav + jpg 6 s"]
    once = {name: spent[name] for name in ("load bank (cached)", "morpher setup")}
    stages = [{"stage": name, "ms": 1000 * seconds} for name, seconds in {**once, **per}.items()]
    print(format_table(stages, [("stage", "stage", "{}"), ("ms/call", "ms", "{:.1f}")]))
    print(f"\nmp4 / wav+jpg clip cost: {clip_mp4 / clip_wav:.2f}x")
    anew = per["speech 6 s, each band designed anew"] / per["speech 6 s"]
    print(f"speech, each band designed anew / once: {anew:.2f}x (same samples)")
    print(f"mp4, AAC twoloop / fast: {per['mp4 6 s, AAC twoloop'] / per['mp4 6 s']:.2f}x")
    for coder in ("fast", "twoloop"):
        print(
            f"AAC {coder}: {np.median(sizes[coder]) / 1e3:.1f} kB per 6 s clip, decoded sound "
            f"{min(snrs[coder]):.1f}-{max(snrs[coder]):.1f} dB SNR against the voice"
        )
    for label, (people, clips, seconds) in WORLDS.items():
        speech_share = seconds / 6.0  # speech and encoding scale with the clip length
        for media, encode in (("mp4", per["mp4 6 s"]), ("wav", per["wav + jpg 6 s"])):
            clip = per["view"] + speech_share * (per["speech 6 s"] + encode)
            total = people * (per["morph"] + per["backdrop"]) + people * clips * clip
            print(
                f"{label} world ({people} x {clips} x {seconds:g} s, {media}): {total:.0f} core-s, "
                f"about {total / args.cores:.0f} s on {args.cores} cores"
            )


if __name__ == "__main__":
    main()

"""Where ``s2f synth`` spends its CPU, clip by clip, with the AAC coder and the consonants' filter design done two ways.

``s2f synth`` (the first stage of ``s2f demo``) renders each identity's face once, then for every clip a
view of it, a voice, and an mp4 holding both. This times each part in CPU seconds per clip
(``time.process_time``, so other work on shared cores does not inflate it), on the first identities of
the default world (seed 0), in one process:

- **face**: the identity's morph (once per identity, shared by its clips) and each clip's view;
- **voice**: the source-filter voice (``s2f.synth.voice.synthesize_speech``), with each consonant's
  band-pass designed once per band (as shipped: ``_band_pass`` is cached) and designed anew for every
  consonant (as before), rounds interleaved; the two give the same bytes, which this checks;
- **mp4**: ``write_mp4`` with FFmpeg's ``fast`` AAC coder (as shipped) and its default ``twoloop`` search,
  rounds interleaved, with each file's size and the signal-to-noise ratio of its decoded sound against
  the voice written into it.

Usage:
    python benchmarks/synth_stages.py [--identities 8] [--quick] [--json out.json]

The face photos come from the same cache ``s2f synth`` uses (downloaded once by ``s2f synth``/``s2f demo``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import scipy.signal

from _table import format_table, machine
from s2f.audio import load_clip
from s2f.synth import voice
from s2f.synth.face_sources import load_bank
from s2f.synth.morph import Morpher
from s2f.synth.video import write_mp4
from s2f.synth.world import draw_identities, render_backdrop, render_view
from s2f.synth.world_spec import WorldSpec

CODERS = ("fast", "twoloop")


def _designed_every_time(low: float, high: float) -> np.ndarray:
    return scipy.signal.butter(2, [low, high], btype="band", fs=voice.SAMPLE_RATE, output="sos")


def _cpu_ms(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    began = time.process_time()
    out = fn(*args, **kwargs)
    return (time.process_time() - began) * 1e3, out


def snr_db(written: np.ndarray, decoded: np.ndarray) -> float:
    """The decoded sound against the one written, over their common length (AAC here adds no delay)."""
    length = min(written.size, decoded.size)
    error = decoded[:length] - written[:length]
    return float(10 * np.log10(np.sum(written[:length] ** 2) / max(np.sum(error**2), 1e-20)))


def measure(identities: int, seconds: float) -> dict[str, Any]:
    spec = WorldSpec()
    morpher = Morpher(load_bank(sources=spec.sources))
    people = draw_identities(morpher, identities, spec.seed, spec.test_fraction)
    times: dict[str, list[float]] = {"face (morph, per clip)": [], "face (view)": [], "voice, band cached": [],
                                     "voice, band designed each time": []}  # fmt: skip
    times.update({f"mp4, AAC {coder}": [] for coder in CODERS})
    sizes: dict[str, list[int]] = {coder: [] for coder in CODERS}
    snrs: dict[str, list[float]] = {coder: [] for coder in CODERS}
    with tempfile.TemporaryDirectory() as scratch:
        for person in people:
            morph_ms, face = _cpu_ms(morpher.render, person.morph)
            backdrop = render_backdrop(person)
            for clip in range(spec.clips_per_identity):
                times["face (morph, per clip)"].append(morph_ms / spec.clips_per_identity)
                seed = [spec.seed, person.index, 1, clip]
                view_ms, frame = _cpu_ms(render_view, face, backdrop, person, np.random.default_rng(seed))
                times["face (view)"].append(view_ms)
                with mock.patch.object(voice, "_band_pass", _designed_every_time):
                    slow_ms, slow = _cpu_ms(voice.synthesize_speech, person.voice, seconds, np.random.default_rng(seed))
                fast_ms, sound = _cpu_ms(voice.synthesize_speech, person.voice, seconds, np.random.default_rng(seed))
                if slow.tobytes() != sound.tobytes():
                    raise AssertionError("the cached band-pass changed the voice's samples")
                times["voice, band designed each time"].append(slow_ms)
                times["voice, band cached"].append(fast_ms)
                for coder in CODERS:
                    path = Path(scratch) / f"{person.index}-{clip}-{coder}.mp4"
                    coder_ms, _ = _cpu_ms(write_mp4, path, frame, sound, aac_coder=coder)
                    times[f"mp4, AAC {coder}"].append(coder_ms)
                    sizes[coder].append(path.stat().st_size)
                    snrs[coder].append(snr_db(sound, load_clip(path, sample_rate=voice.SAMPLE_RATE).numpy()))
    return {"times_ms": times, "bytes": sizes, "snr_db": snrs, "clips": len(times["face (view)"])}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=8, help="identities of the default world (3 clips each)")
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length (the demo's: 6 s)")
    parser.add_argument("--quick", action="store_true", help="1 identity, 2 s clips: a smoke test")
    parser.add_argument("--json", type=Path, help="also write every time here")
    args = parser.parse_args(argv)
    if args.quick:
        args.identities, args.seconds = 1, 2.0
    result = measure(args.identities, args.seconds)
    result["machine"] = machine()
    print(f"machine: {result['machine']}")
    print(f"CPU ms per clip, median of {result['clips']} clips of {args.seconds:g} s (time.process_time)")
    shipped = ("face (morph, per clip)", "face (view)", "voice, band cached", "mp4, AAC fast")
    total = sum(statistics.median(result["times_ms"][part]) for part in shipped)
    rows = [
        {"part": part, "ms": statistics.median(values),
         "share": statistics.median(values) / total if part in shipped else None}
        for part, values in result["times_ms"].items()
    ]  # fmt: skip
    print(
        format_table(
            rows, (("part", "part", "{}"), ("CPU ms/clip", "ms", "{:.1f}"), ("share of shipped", "share", "{:.0%}"))
        )
    )
    median = {part: statistics.median(values) for part, values in result["times_ms"].items()}
    result["voice_ratio"] = median["voice, band designed each time"] / median["voice, band cached"]
    result["coder_ratio"] = median["mp4, AAC twoloop"] / median["mp4, AAC fast"]
    print(f"voice: designed each time / cached = {result['voice_ratio']:.2f} (same run, same bytes)")
    print(f"mp4: twoloop / fast = {result['coder_ratio']:.2f} (same run)")
    for coder in CODERS:
        print(
            f"AAC {coder:8s}: {statistics.median(result['bytes'][coder]) / 1e3:.1f} kB per clip, decoded SNR "
            f"{min(result['snr_db'][coder]):.1f}-{max(result['snr_db'][coder]):.1f} dB"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

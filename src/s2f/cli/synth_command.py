"""``s2f synth``: write a synthetic audio-visual world and print the command that prepares it."""

from __future__ import annotations

import argparse
import shlex
import sys

from s2f.errors import S2FError

__all__ = ["main"]

# (identities, clips per identity, seconds per clip)
QUICK = (60, 2, 3.0)
DEFAULT = (300, 3, 6.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2f synth",
        description="A synthetic audio-visual world: morphs of real face photos with voices that follow the face, "
        "written as VoxCeleb-style mp4 (or wav + jpg) files and meta CSV for s2f prepare.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the world into")
    parser.add_argument("--identities", type=int, metavar="N", help=f"people (default {DEFAULT[0]}, quick {QUICK[0]})")
    parser.add_argument(
        "--clips", type=int, metavar="N", help=f"clips per person (default {DEFAULT[1]}, quick {QUICK[1]})"
    )
    parser.add_argument(
        "--seconds", type=float, metavar="S", help=f"clip length in s (default {DEFAULT[2]:g}, quick {QUICK[2]:g})"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="the same seed gives the same files (default 0)"
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, metavar="F", help="held-out identities (default 0.2)"
    )
    parser.add_argument("--quick", action="store_true", help="a small world for a first look (60 x 2 clips of 3 s)")
    parser.add_argument("--media", choices=("mp4", "wav"), default="mp4", help="mp4, or wav + same-stem jpg")
    parser.add_argument("--workers", type=int, metavar="N", help="processes (default: the CPU cores)")
    parser.add_argument("--cache-dir", metavar="DIR", help="source photo cache (default ~/.cache/s2f/face-sources)")
    parser.add_argument("--photos", metavar="DIR", help="a folder of extra frontal face photos to morph")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--ceiling",
        metavar="SHARDS",
        help="after writing (or finding) the world, print how well its true voice parameters retrieve held-out "
        "faces in these prepared shards: the ceiling for any voice encoder",
    )
    return parser


def main(args: list[str]) -> int:
    """Runs ``s2f synth ARGS``; returns the exit status."""
    options = _parser().parse_args(args)
    sizes = QUICK if options.quick else DEFAULT
    identities = options.identities if options.identities is not None else sizes[0]
    clips = options.clips if options.clips is not None else sizes[1]
    seconds = options.seconds if options.seconds is not None else sizes[2]
    from .ceiling import voice_face_ceiling
    from .world import synthesize_world

    try:
        world = synthesize_world(
            options.out,
            identities=identities,
            clips_per_identity=clips,
            seconds=seconds,
            seed=options.seed,
            test_fraction=options.test_fraction,
            media=options.media,
            workers=options.workers,
            progress=not options.no_progress,
            cache_dir=options.cache_dir,
            photos=options.photos,
        )
        report = voice_face_ceiling(options.ceiling, world.identities_csv) if options.ceiling else None
    except S2FError as err:
        print(f"s2f synth: error: {err}", file=sys.stderr)
        return 2
    splits = [row["split"] for row in world.identities()]
    shards = f"{options.out.rstrip('/')}-shards"
    print(
        f"s2f synth: {identities} identities x {clips} clips of {seconds:g} s "
        f"({splits.count('dev')} dev, {splits.count('test')} test) in {world.seconds_taken:.1f} s\n"
        f"  media:      {world.root}/\n"
        f"  meta:       {world.meta_csv}\n"
        f"  identities: {world.identities_csv}  (face properties and voice parameters)\n"
        f"next:\n  s2f prepare --voxceleb {shlex.quote(str(world.root))} "
        f"--voxceleb-meta {shlex.quote(str(world.meta_csv))} --teacher dlib_resnet --out {shlex.quote(shards)}"
    )
    if report is not None:
        print(report.table())
    return 0

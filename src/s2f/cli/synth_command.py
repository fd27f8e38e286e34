"""``s2f synth``: write a synthetic audio-visual world and print the command that prepares it.

The options are :func:`s2f.synth.synthesize_world`'s keywords and :class:`s2f.synth.WorldSpec`'s fields,
plus ``--quick`` (a small world) and
``--reference`` (how well a kernel ridge on the world's true voice parameters retrieves faces in prepared shards).
"""

from __future__ import annotations

import shlex
from typing import Any

from ._options import Flag, FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse

__all__ = ["QUICK", "main", "parser"]

QUICK = {"identities": 60, "clips_per_identity": 2, "seconds": 3.0}
"""The world of ``--quick``; options given explicitly win."""


def _options() -> FunctionOptions:
    from s2f.synth.world import synthesize_world
    from s2f.synth.world_spec import CARRIERS, MEDIA, WorldSpec

    def sized(name: str, *names: str) -> Flag:  # default None: the size comes from --quick or WorldSpec
        return Flag(names, default=None, shown_default=f"{getattr(WorldSpec(), name):g}, --quick {QUICK[name]:g}")

    return FunctionOptions(
        synthesize_world,
        flags={
            "out_dir": Flag(("--out",), metavar="DIR"),
            "identities": sized("identities"),
            "clips_per_identity": sized("clips_per_identity", "--clips"),
            "seconds": sized("seconds"),
            "media": Flag(choices=MEDIA),
            "carrier": Flag(choices=CARRIERS),
        },
    )


def _parser(options: FunctionOptions) -> CommandParser:
    return build_parser(
        "s2f synth",
        "A synthetic audio-visual world: morphs of real face photos with voices that follow the face, "
        "written as VoxCeleb-style mp4 (or wav + jpg) files and meta CSV for s2f prepare.",
        options,
        Option("quick", "a small world for a first look (60 x 2 clips of 3 s)", type=bool, default=False),
        Option(
            "reference",
            "after writing (or finding) the world, print how well a kernel ridge on its true voice parameters "
            "retrieves held-out faces in these prepared shards, scored as s2f eval scores a model",
            metavar="SHARDS",
        ),
        config_file=True,
    )


def parser() -> CommandParser:
    """The options of ``s2f synth``."""
    return _parser(_options())


def main(args: list[str]) -> int:
    """Runs ``s2f synth ARGS``; returns the exit status."""
    options = _options()
    parsed = parse(_parser(options), args)
    from s2f.synth.reference import voice_parameter_reference
    from s2f.synth.world_spec import WorldSpec

    for name, quick in QUICK.items():
        if getattr(parsed, name) is None:
            setattr(parsed, name, quick if parsed.quick else getattr(WorldSpec(), name))
    kwargs: dict[str, Any] = options.kwargs(parsed)
    spec: WorldSpec = kwargs["world"]

    world = options.function(**kwargs)
    report = voice_parameter_reference(parsed.reference, world.identities_csv) if parsed.reference else None
    splits = [row["split"] for row in world.identities()]
    out = str(parsed.out_dir)
    shards = f"{out.rstrip('/')}-shards"
    print(
        f"s2f synth: {spec.identities} identities x {spec.clips_per_identity} clips of "
        f"{spec.seconds:g} s ({splits.count('dev')} dev, {splits.count('test')} test) "
        f"in {world.seconds_taken:.1f} s\n"
        f"  media:      {world.root}/\n"
        f"  meta:       {world.meta_csv}\n"
        f"  identities: {world.identities_csv}  (face properties and voice parameters)\n"
        f"next:\n  s2f prepare --voxceleb {shlex.quote(str(world.root))} "
        f"--voxceleb-meta {shlex.quote(str(world.meta_csv))} --teacher dlib_resnet --out {shlex.quote(shards)}"
    )
    if report is not None:
        print(report.table())
    return 0

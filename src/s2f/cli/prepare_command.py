"""``s2f prepare``: media to training shards.

The input options say which reader of :mod:`s2f.prepare.sources` lists the clips; every other option
is a keyword of :func:`s2f.prepare.prepare` or a field of its option groups
(:mod:`s2f.prepare.options`), generated from them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from s2f.extras import require_extra

from ._options import Flag, FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse

__all__ = ["main", "parser"]

_EPILOG = """
Every listed clip ends up in the shards or in OUT/rejects.jsonl with a reason. Stopped or killed,
the same command resumes; run again on the same input, it does nothing.
"""


def _options() -> FunctionOptions:
    from s2f.prepare import prepare
    from s2f.shards.format import AUDIO_CODECS

    return FunctionOptions(
        prepare,
        skip=("tasks",),
        flags={
            "out_dir": Flag(("--out",), metavar="DIR"),
            "teacher": Flag(default="vggface", metavar="NAME"),
            "teacher_weights": Flag(metavar="FILE"),
            "num_frames": Flag(("--frames",)),
            "min_face_size": Flag(("--min-face",), metavar="PIXELS"),
            "audio_codec": Flag(choices=AUDIO_CODECS),
            "num_workers": Flag(("--workers",)),
        },
    )


def _parser(options: FunctionOptions) -> CommandParser:
    def source(dest: str, help: str, metavar: str) -> Option:
        return Option(dest, help, metavar=metavar, group="input (one of)", exclusive="input")

    return build_parser(
        "s2f prepare",
        "Build training shards from media: detect, align and embed faces, keep 6 s of speech.",
        source("avspeech", "AVSpeech rows (youtube_id,start,end,face_x,face_y); needs --videos", "CSV"),
        source("voxceleb", "VoxCeleb tree id*/VIDEO/CLIP.{mp4,wav,m4a} (wav/m4a need a same-stem .jpg)", "DIR"),
        source("folder", "every video, and every audio file with a same-stem face image", "DIR"),
        source("manifest", "speaker_id,video (or audio,face)[,clip_id,split,start,end,face_x,face_y,...]", "CSV"),
        source(
            "pairs",
            "speaker_id,audio,face[,clip_id,split,...] whose images are already face crops (no detection; any bad "
            "row stops the build; not resumable)",
            "CSV",
        ),
        Option("videos", "folder of the downloaded AVSpeech videos (with --avspeech)", metavar="DIR", group="listing"),
        Option("voxceleb_meta", "vox1_meta.csv / vox2_meta.csv (with --voxceleb)", metavar="CSV", group="listing"),
        Option("split", "put every clip in this split", choices=("train", "val", "test"), group="listing"),
        *options.options(title="output"),
        epilog=_EPILOG,
        config_file=True,
        required_choices=("input",),
    )


def parser() -> CommandParser:
    """The options of ``s2f prepare``."""
    return _parser(_options())


def main(args: list[str]) -> int:
    """Runs ``s2f prepare ARGS``; returns the exit status."""
    options = _options()
    command = _parser(options)
    parsed = parse(command, args)
    if parsed.avspeech and not parsed.videos:
        command.error("--avspeech needs --videos DIR, the folder of downloaded videos")
    if parsed.videos and not parsed.avspeech:
        command.error("--videos goes with --avspeech")
    if parsed.voxceleb_meta and not parsed.voxceleb:
        command.error("--voxceleb-meta goes with --voxceleb")
    kwargs = options.kwargs(parsed)
    if parsed.pairs:  # crops already: no detection, only the teacher (which says what it needs)
        return _prepare_pairs(parsed.pairs, kwargs)
    require_extra("faces", "s2f prepare", modules=("facenet_pytorch",))  # before listing a single clip

    from s2f.prepare.engine import PrepareInterrupted

    try:
        summary = options.function(_list_clips(parsed), **kwargs)
    except PrepareInterrupted as stop:
        print(f"s2f prepare: {stop}", file=sys.stderr)
        return stop.exit_code
    if summary.manifest.splits or summary.rejected or summary.nothing_to_do:
        print(summary.table())
    return 0


def _list_clips(parsed: argparse.Namespace) -> list[Any]:
    from s2f.prepare import sources

    if parsed.avspeech:
        return sources.read_avspeech(parsed.avspeech, parsed.videos, split=parsed.split)
    if parsed.voxceleb:
        tasks = sources.scan_voxceleb(parsed.voxceleb, parsed.voxceleb_meta)
    elif parsed.folder:
        tasks = sources.scan_folder(parsed.folder)
    else:
        tasks = sources.read_manifest_csv(parsed.manifest)
    for task in tasks if parsed.split else ():
        task.split = parsed.split
    return tasks


def _prepare_pairs(pairs: str, kwargs: dict[str, Any]) -> int:
    """Shards from image crops: no detection, so only the teacher, audio length and batch size apply."""
    from s2f.prepare import build_shards_from_pairs
    from s2f.teachers.by_name import build_teacher

    weights = kwargs["teacher_weights"]
    manifest = build_shards_from_pairs(
        pairs,
        kwargs["out_dir"],
        build_teacher(kwargs["teacher"], weights),
        batch_size=kwargs["compute"].batch_size,
        max_seconds=kwargs["decode"].max_seconds,
        overwrite=kwargs["overwrite"],
    )
    for split, info in manifest.splits.items():
        print(f"{split:>5}: {info.clips} clips from {info.speakers} speakers")
    print(f"wrote {kwargs['out_dir']} (teacher {manifest.teacher}, {manifest.embed_dim}-D)")
    return 0

"""``s2f check SHARDS``: verifies a whole shard root, chunk by chunk, before a long training run relies on it."""

from __future__ import annotations

import time

from .command_parser import CommandParser, Option, build_parser, parse

__all__ = ["main", "parser"]


def parser() -> CommandParser:
    """The options of ``s2f check``."""
    return build_parser(
        "s2f check",
        "Verify a local shard root written by `s2f prepare`: the manifest, each split's index and clip count, "
        "and every chunk's size, row count and checksum (chunks from before checksums: size and rows only).",
        Option("shards", "the shard root (the folder holding s2f_shards.json)", positional=True),
    )


def main(args: list[str]) -> int:
    """Runs ``s2f check ARGS``; a damaged root is an S2FError (one line, exit status 2)."""
    options = parse(parser(), args)
    from s2f.errors import ShardFormatError
    from s2f.shards.integrity import check_root
    from s2f.shards.reader import read_manifest

    if "://" in options.shards:  # chunks in object storage are fetched by litdata, not read in place
        raise ShardFormatError(f"{options.shards}: s2f check reads local shard roots; copy the root to a disk first")
    started = time.perf_counter()
    manifest = read_manifest(options.shards)
    for split, chunks, with_checksum in check_root(manifest):
        unverified = chunks - with_checksum
        note = f", {unverified} without a checksum (written before s2f recorded them)" if unverified else ""
        print(f"{split}: {manifest.splits[split].clips} clips in {chunks} chunks, all intact{note}")
    print(f"{manifest.root}: ok ({time.perf_counter() - started:.1f} s)")
    return 0

"""Chunk checksums: written into each split's ``index.json`` when shards are written, verified when read.

Every chunk entry of ``index.json`` gains ``sha256`` (the hex digest of the chunk file) when a
:class:`~s2f.shards.ShardWriter` closes; ``s2f prepare`` carries it over when it assembles parts.
Readers verify a local chunk the first time they touch it (one pass over its bytes, about 0.2 s per
64 MB chunk), and :func:`check_root` (``s2f check``) verifies a whole root. Chunks written before
checksums existed have no ``sha256``: they still read, with only the size and row-count checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from s2f.errors import ShardFormatError

from .format import INDEX_NAME, MANIFEST_NAME, ShardManifest, _join

__all__ = ["add_checksums", "check_root", "chunk_digest", "damaged_chunks", "verify_chunk"]

CHECKSUM_KEY = "sha256"


def chunk_digest(path: str) -> str:
    """The sha256 hex digest of a file, read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def add_checksums(split_dir: str, index: dict[str, Any]) -> dict[str, Any]:
    """``index`` with the digest of each of its chunk files in ``split_dir`` added to the chunk's entry."""
    chunks = [
        {**chunk, CHECKSUM_KEY: chunk_digest(os.path.join(split_dir, chunk["filename"]))} for chunk in index["chunks"]
    ]
    return {**index, "chunks": chunks}


# `s2f prepare` names each chunk of its roots after the part that wrote it: ROOT/SPLIT/chunk-PART-K.bin.
PREPARED_CHUNK = re.compile(r"^chunk-(\d+)-\d+\.bin$")


def _recovery(path: str) -> str:
    name = os.path.basename(path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    match = PREPARED_CHUNK.match(name)
    if match and os.path.isfile(os.path.join(root, ".s2f_prepare", "settings.json")):
        # s2f.prepare.repair: the rerun finds the damaged chunk and redoes the part that wrote it.
        return (
            f"run the same `s2f prepare` command again: it rebuilds part {match.group(1)}, which wrote {name}, "
            "and keeps every other chunk"
        )
    return f"rebuild the root with `s2f prepare ... --overwrite` (or copy {name} again from a good copy)"


def verify_chunk(split_dir: str, chunk: dict[str, Any]) -> None:
    """Checks one chunk file against its ``index.json`` entry: size, row count, and checksum when recorded.

    Raises:
        ShardFormatError: One line naming the chunk, what is wrong and how to recover.
    """
    path = os.path.join(split_dir, str(chunk["filename"]))
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            header = handle.read(4)
    except OSError as exc:
        raise ShardFormatError(f"{path}: cannot read this chunk ({exc.strerror or exc}); {_recovery(path)}") from None
    expected_size = chunk.get("chunk_bytes")
    if isinstance(expected_size, int) and size != expected_size:
        raise ShardFormatError(
            f"{path}: chunk is {size} bytes, index.json says {expected_size} (truncated?); {_recovery(path)}"
        )
    rows = struct.unpack("<I", header)[0] if len(header) == 4 else -1
    if rows != int(chunk["chunk_size"]):
        raise ShardFormatError(
            f"{path}: chunk holds {rows} rows, index.json says {chunk['chunk_size']}; {_recovery(path)}"
        )
    recorded = chunk.get(CHECKSUM_KEY)
    if recorded is not None and chunk_digest(path) != recorded:
        raise ShardFormatError(f"{path}: chunk checksum does not match index.json (corrupt bytes); {_recovery(path)}")


def read_index(split_dir: str) -> dict[str, Any]:
    """A local split's ``index.json`` as a dict; one-line error when it cannot be read."""
    path = os.path.join(split_dir, INDEX_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
        if not isinstance(index, dict) or not isinstance(index.get("chunks"), list):
            raise ValueError("no chunk list")
        return index
    except (OSError, ValueError) as exc:
        raise ShardFormatError(f"{path}: not a readable litdata index ({exc}); re-run `s2f prepare`") from None


def check_counts(split_dir: str, index: dict[str, Any], manifest_clips: int) -> None:
    """Refuses a manifest whose clip count for the split disagrees with the chunks its index lists."""
    try:
        listed = sum(int(chunk["chunk_size"]) for chunk in index["chunks"])
    except (KeyError, TypeError, ValueError):
        index_path = _join(split_dir, INDEX_NAME)
        raise ShardFormatError(f"{index_path}: a chunk entry has no row count; re-run `s2f prepare`") from None
    if listed != manifest_clips:
        root = os.path.dirname(split_dir.rstrip("/"))
        raise ShardFormatError(
            f"{_join(root, MANIFEST_NAME)} says split {os.path.basename(split_dir)!r} holds {manifest_clips} clips, "
            f"its index.json lists {listed}; the root is inconsistent: rebuild it with `s2f prepare ... --overwrite`"
        )


def check_root(manifest: ShardManifest) -> Iterator[tuple[str, int, int]]:
    """Verifies every chunk of a local shard root; yields ``(split, chunks, chunks_with_a_checksum)``.

    Raises:
        ShardFormatError: At the first problem, one line naming the file.
    """
    for split, info in manifest.splits.items():
        split_dir = os.path.join(manifest.root, split)
        index = read_index(split_dir)
        check_counts(split_dir, index, info.clips)
        for chunk in index["chunks"]:
            verify_chunk(split_dir, chunk)
        yield split, len(index["chunks"]), sum(CHECKSUM_KEY in chunk for chunk in index["chunks"])


def damaged_chunks(split_dir: str, threads: int = 1) -> list[tuple[str, str]]:
    """Every chunk of a local split that fails :func:`verify_chunk`, as ``(filename, what is wrong)``.

    ``threads`` chunks are hashed at a time (hashlib releases the GIL while it hashes). A split
    without a readable ``index.json`` has nothing to check here; :func:`check_root` reports it.
    """
    try:
        chunks = read_index(split_dir)["chunks"]
    except ShardFormatError:
        return []

    def problem(chunk: dict[str, Any]) -> tuple[str, str] | None:
        try:
            verify_chunk(split_dir, chunk)
        except ShardFormatError as err:
            return str(chunk["filename"]), str(err).split(": ", 1)[-1].split("; ", 1)[0]
        return None

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return [found for found in pool.map(problem, chunks) if found is not None]

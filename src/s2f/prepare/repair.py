"""A rerun of ``s2f prepare`` rebuilds the parts whose chunks are damaged, and only those.

Every chunk an assembled root holds is named after the part that wrote it (``SPLIT/chunk-PART-K.bin``,
see :mod:`s2f.prepare.parts`). Before it plans, a rerun verifies each assembled chunk against its
split's ``index.json`` (size, row count, sha256: :func:`s2f.shards.integrity.damaged_chunks`). For a
chunk that fails, the part that wrote it is taken back: the manifest goes first (so no reader sees a
root that disagrees with itself), then every chunk of that part in every split, then its
``done.json`` and folder. Its clips are then simply not done, so the run prepares them again into a
new part and the assembly writes new indexes; every other chunk stays where it is, byte for byte.

Each step is idempotent, so a run killed in the middle of it repeats it: a part whose ``done.json``
is gone is uncommitted debris, a chunk the index lists but that is gone is found again as damaged.

Cost: one read of every assembled chunk per rerun (measured about 650 MB/s from the page cache on the
shared 2-core machine; a thread per core, which helped nothing there). A rerun that finds nothing to
do pays it too: that is what makes the rerun the recovery that the readers' error message names.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from s2f.errors import ShardFormatError
from s2f.shards.format import MANIFEST_NAME, SPLITS
from s2f.shards.integrity import PREPARED_CHUNK, damaged_chunks

from .parts import PartStore

__all__ = ["take_back_damaged_parts"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def take_back_damaged_parts(store: PartStore) -> dict[int, list[str]]:
    """Uncommits every part that wrote a damaged assembled chunk; returns ``{part: [damaged chunk, ...]}``.

    Says on stderr which chunk was damaged and which part is redone.

    Raises:
        ShardFormatError: For a damaged chunk that no part of this root wrote (a file copied in by hand).
    """
    damaged: dict[int, list[str]] = {}
    for split in SPLITS:
        split_dir = store.root / split
        if not split_dir.is_dir():
            continue
        for name, problem in damaged_chunks(str(split_dir), threads=_cores()):
            match = PREPARED_CHUNK.match(name)
            if match is None:
                raise ShardFormatError(
                    f"{split_dir / name}: {problem}, and no part of this root wrote it; copy it again from a good "
                    "copy or rebuild the root with `s2f prepare ... --overwrite`"
                )
            part = int(match.group(1))
            damaged.setdefault(part, []).append(f"{split}/{name}")
            print(
                f"s2f prepare: {split_dir / name}: {problem}; part {part}, which wrote it, is redone", file=sys.stderr
            )
    if damaged:
        _take_back(store, sorted(damaged))
    return damaged


def _take_back(store: PartStore, parts: list[int]) -> None:
    manifest = store.root / MANIFEST_NAME
    if manifest.exists():
        manifest.unlink()
    for part in parts:
        for split in SPLITS:
            for chunk in (store.root / split).glob(f"chunk-{part}-*.bin"):
                chunk.unlink()
        done = store.part_dir(part) / "done.json"
        if done.exists():
            done.unlink()
        shutil.rmtree(Path(store.part_dir(part)), ignore_errors=True)

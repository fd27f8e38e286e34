"""Test shards, written by the library's own writer and builders, built once per session and shared read-only.

:class:`ShardFactory` is what the session-scoped ``shard_factory`` fixture (``tests/conftest.py``)
returns. Each kind of data is built the first time a test asks for it, in its own temporary
folder; every later request with the same arguments, from any module, gets the same root. Tests
only read these roots: one that changes files asks the ``writable_shards`` fixture for a private copy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from s2f.shards import SAMPLE_RATE, ClipRecord, ShardWriter

__all__ = ["TOY_TEACHER", "ShardFactory", "random_record", "toy_corpus_shards", "write_shards"]

T = TypeVar("T")

# The teacher every toy root is embedded with: a seeded random network, so no weights file is needed.
TOY_TEACHER = "vggface_tiny"


def write_shards(
    root: Path, records: Iterable[ClipRecord], *, teacher: str, embed_dim: int, chunk_bytes: str = "64MB"
) -> Path:
    """Writes ``records`` into a new shard root through :class:`~s2f.shards.ShardWriter`; returns ``root``."""
    with ShardWriter(root, teacher=teacher, embed_dim=embed_dim, chunk_bytes=chunk_bytes) as writer:
        for record in records:
            writer.write(record)
    return root


def toy_corpus_shards(
    folder: Path, *, speakers: int, clips_per_speaker: int, held_out: int, chunk_bytes: str = "64MB"
) -> Path:
    """The toy corpus as files (``folder/media``: wav + jpg + pairs.csv), built into ``folder/shards``.

    The voices are synthesised from the same hidden traits the faces are drawn from, so a model can
    learn something; the last ``2 * held_out`` speakers are the val and test splits.
    """
    from s2f import TEACHERS
    from s2f.data import build_shards_from_pairs
    from s2f.synth.toy import make_toy_corpus

    pairs = make_toy_corpus(folder / "media", speakers=speakers, clips_per_speaker=clips_per_speaker, held_out=held_out)
    build_shards_from_pairs(pairs, folder / "shards", TEACHERS.create(TOY_TEACHER), chunk_bytes=chunk_bytes)
    return folder / "shards"


def random_record(
    rng: np.random.Generator,
    clip_id: str,
    speaker_id: str,
    num_samples: int = SAMPLE_RATE,
    *,
    embed_dim: int,
    split: str | None = None,
    float_audio: bool = False,
    num_landmarks: int = 0,
    metadata: dict[str, Any] | None = None,
) -> ClipRecord:
    """A row with every field filled: noise audio (int16, or float in [-1, 1)), a smooth face, source and times."""
    audio = (rng.standard_normal(num_samples) * 4000).clip(-32768, 32767).astype(np.int16)
    if float_audio:
        audio = audio.astype(np.float32) / 32768.0
    # A smooth face compresses like a photo; pure noise would make JPEG error meaningless.
    yy, xx = np.mgrid[0:224, 0:224]
    base = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.float64)
    face = np.clip(base + rng.integers(0, 40), 0, 255).astype(np.uint8)
    return ClipRecord(
        clip_id=clip_id,
        speaker_id=speaker_id,
        audio=audio,
        face=face,
        embedding=rng.standard_normal(embed_dim).astype(np.float32),
        landmarks=rng.uniform(0, 224, (num_landmarks, 2)).astype(np.float32),
        split=split,
        source_video=f"yt:{speaker_id}",
        source_start=1.25,
        source_end=1.25 + num_samples / SAMPLE_RATE,
        frame_time=2.5,
        metadata=metadata if metadata is not None else {},
    )


class ShardFactory:
    """Builds each kind of test shards once per session and hands every caller the same read-only result.

    Args:
        tmp_path_factory: pytest's session temporary-folder factory; each build gets a folder of its own.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._built: dict[Hashable, Any] = {}
        self._builders: dict[str, Callable[[Path], Any]] = {}

    def toy(
        self, *, speakers: int = 10, clips_per_speaker: int = 4, held_out: int = 1, chunk_bytes: str = "64MB"
    ) -> Path:
        """Shards of the toy corpus (:func:`toy_corpus_shards`), one root per distinct set of arguments."""
        key = ("toy", speakers, clips_per_speaker, held_out, chunk_bytes)
        return self._once(
            key,
            "toy",
            lambda folder: toy_corpus_shards(
                folder,
                speakers=speakers,
                clips_per_speaker=clips_per_speaker,
                held_out=held_out,
                chunk_bytes=chunk_bytes,
            ),
        )

    def build(self, name: str, builder: Callable[[Path], T]) -> T:
        """``builder(folder)``, run once per session; its result (a root, or a root and what was written in it).

        ``name`` labels the folder and belongs to one builder: two builders under one name would
        silently hand one module the other's data, so that is an error.
        """
        known = self._builders.setdefault(name, builder)
        if known is not builder:
            raise ValueError(f"shard_factory: {name!r} is already built by {known.__qualname__}; give it another name")
        return self._once(("build", name), name, builder)

    def _once(self, key: Hashable, label: str, build: Callable[[Path], T]) -> T:
        if key not in self._built:
            self._built[key] = build(self._tmp.mktemp(label))
        return self._built[key]

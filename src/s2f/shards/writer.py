"""Writing shards: :class:`ShardWriter` checks and encodes each clip, then writes the index and manifest last."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from litdata.streaming.writer import BinaryWriter

from s2f._atomic import atomic_open
from s2f.errors import ShardFormatError

from .codec import _encode_audio, _encode_face, _finite_float, _metadata_json, _to_int16
from .format import (
    _FP16_MAX,
    AUDIO_CODECS,
    DEFAULT_SPLIT_FRACTIONS,
    FACE_SIZE,
    INDEX_NAME,
    MANIFEST_NAME,
    SAMPLE_RATE,
    SPLITS,
    ClipRecord,
    ShardManifest,
    SplitInfo,
    _check_fractions,
    _is_url,
    _join,
    _serializers,
    assign_split,
)
from .integrity import add_checksums
from .reader import _check_index

__all__ = ["ShardWriter"]

# --------------------------------------------------------------------------------------------- writer


@dataclass
class _SplitState:
    writer: BinaryWriter
    next_index: int = 0
    speakers: set[str] = field(default_factory=set)


class ShardWriter:
    """Writes :class:`ClipRecord` rows into a shard root, one litdata dataset per split.

    Rows stream straight to chunk files from the calling process (no worker pool); a writer owns its
    folder, so under torch.distributed each rank can write its own root (``s2f prepare`` does, then
    merges them, see :mod:`s2f.prepare.parts`). Split assignment is per speaker: a record's explicit
    ``split`` wins, otherwise :func:`assign_split` hashes the speaker id; a speaker never ends up in
    two splits. The manifest is written last, by
    :meth:`close`, so an interrupted run leaves a folder that readers reject instead of a silently
    truncated dataset.

    Args:
        root: Output folder (local). Created if missing.
        teacher: Name of the face network that produced the embeddings.
        embed_dim: Length of every embedding.
        split_fractions: Train, val and test shares for speakers without an explicit split.
        audio_codec: ``"flac"`` (lossless, about half the size of raw speech) or ``"pcm16"``
            (raw little-endian int16: larger, no decoding cost).
        max_seconds: Longest clip accepted; longer audio is rejected, not cropped.
        chunk_bytes: Target size of one chunk file (litdata syntax, e.g. ``"64MB"``).
        overwrite: Replace shards already in ``root`` (the manifest and split folders only).

    Example:
        >>> import numpy as np, tempfile
        >>> with ShardWriter(tempfile.mkdtemp(), teacher="toy", embed_dim=2) as writer:
        ...     split = writer.write(ClipRecord("c0", "spk", np.zeros(8000, np.int16),
        ...                                     np.zeros((224, 224, 3), np.uint8), np.zeros(2)))
        >>> writer.manifest.splits[split].clips
        1
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        teacher: str,
        embed_dim: int,
        split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
        audio_codec: str = "flac",
        max_seconds: float = 6.0,
        chunk_bytes: int | str = "64MB",
        overwrite: bool = False,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        if _is_url(os.fspath(root)):
            raise ValueError(
                f"ShardWriter writes to a local folder, got {os.fspath(root)}; upload the folder afterwards"
            )
        if not teacher:
            raise ValueError("teacher must name the face network that produced the embeddings")
        if int(embed_dim) <= 0:
            raise ValueError(f"embed_dim must be positive, got {embed_dim}")
        if audio_codec not in AUDIO_CODECS:
            raise ValueError(f"audio_codec must be one of {AUDIO_CODECS}, got {audio_codec!r}")
        if not (math.isfinite(max_seconds) and max_seconds > 0):
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        # Under torch.distributed, litdata names chunk files after the global rank; the index is merged
        # here from this writer's own file (see close), so each rank can write its own root.
        self.teacher = teacher
        self.embed_dim = int(embed_dim)
        self.split_fractions = _check_fractions(split_fractions)
        self.audio_codec = audio_codec
        self.max_seconds = float(max_seconds)
        self.max_samples = round(self.max_seconds * SAMPLE_RATE)
        self.chunk_bytes = chunk_bytes
        self._prepare_root(overwrite)
        self._splits: dict[str, _SplitState] = {}
        self._speaker_split: dict[str, tuple[str, bool]] = {}  # speaker -> (split, chosen explicitly)
        self._clip_ids: set[str] = set()
        self._manifest: ShardManifest | None = None

    def _prepare_root(self, overwrite: bool) -> None:
        existing = [name for name in (MANIFEST_NAME, *SPLITS) if os.path.exists(os.path.join(self.root, name))]
        if existing and not overwrite:
            raise ShardFormatError(
                f"{self.root} already holds shards ({', '.join(existing)}); "
                "pass overwrite=True (`--overwrite`) or choose an empty folder"
            )
        for name in existing:
            path = os.path.join(self.root, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        os.makedirs(self.root, exist_ok=True)

    @property
    def manifest(self) -> ShardManifest:
        """The manifest written by :meth:`close`."""
        if self._manifest is None:
            raise RuntimeError("the manifest exists once the writer is closed")
        return self._manifest

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On error, leave no manifest behind: readers then reject the half-written folder.
        if exc_type is None:
            self.close()

    def _choose_split(self, record: ClipRecord) -> str:
        explicit = record.split
        if explicit is not None and explicit not in SPLITS:
            raise ValueError(f"clip {record.clip_id!r}: split must be one of {list(SPLITS)}, got {explicit!r}")
        known = self._speaker_split.get(record.speaker_id)
        if known is None:
            split = explicit if explicit is not None else assign_split(record.speaker_id, self.split_fractions)
            self._speaker_split[record.speaker_id] = (split, explicit is not None)
            return split
        split, was_explicit = known
        if explicit is not None and explicit != split:
            how = "explicitly" if was_explicit else "by hash, from an earlier clip without a split"
            raise ValueError(
                f"clip {record.clip_id!r}: speaker {record.speaker_id!r} is given split {explicit!r} but was already "
                f"assigned to {split!r} {how}; give every clip of a speaker the same split"
            )
        return split

    def _row(self, record: ClipRecord, split: str) -> dict[str, Any]:
        cid = record.clip_id
        audio = np.asarray(record.audio)
        if audio.ndim != 1:
            raise ValueError(f"clip {cid!r}: audio must be mono samples [T], got shape {audio.shape}")
        if audio.shape[0] == 0:
            raise ValueError(f"clip {cid!r}: audio is empty")
        if audio.shape[0] > self.max_samples:
            raise ValueError(
                f"clip {cid!r}: audio is {audio.shape[0] / SAMPLE_RATE:.3f} s long, more than max_seconds="
                f"{self.max_seconds:g}; crop it to the first {self.max_seconds:g} s before writing"
            )
        samples = _to_int16(audio, cid)

        face = np.asarray(record.face)
        if face.dtype != np.uint8 or face.shape != (FACE_SIZE, FACE_SIZE, 3):
            raise ValueError(
                f"clip {cid!r}: face must be uint8 [{FACE_SIZE}, {FACE_SIZE}, 3] RGB, got {face.dtype} {face.shape}"
            )

        embedding = np.asarray(record.embedding)
        if embedding.shape != (self.embed_dim,):
            raise ValueError(f"clip {cid!r}: embedding must have shape ({self.embed_dim},), got {embedding.shape}")
        if not (np.issubdtype(embedding.dtype, np.floating) or np.issubdtype(embedding.dtype, np.integer)):
            raise ValueError(f"clip {cid!r}: embedding must be numeric, got dtype {embedding.dtype}")
        if not np.isfinite(embedding).all() or float(np.abs(embedding).max()) > _FP16_MAX:
            raise ValueError(f"clip {cid!r}: embedding must be finite and within float16 range (|x| <= 65504)")

        landmarks = np.asarray(record.landmarks)
        if landmarks.ndim != 2 or landmarks.shape[1] != 2:
            raise ValueError(f"clip {cid!r}: landmarks must have shape [K, 2], got {landmarks.shape}")
        if landmarks.size and not (np.issubdtype(landmarks.dtype, np.number) and np.isfinite(landmarks).all()):
            raise ValueError(f"clip {cid!r}: landmarks must be finite numbers")

        return {
            "clip_id": cid,
            "speaker_id": record.speaker_id,
            "split": split,
            "audio": _encode_audio(samples, self.audio_codec),
            "num_samples": int(samples.shape[0]),
            "face": _encode_face(np.ascontiguousarray(face)),
            "embedding": np.ascontiguousarray(embedding, dtype=np.float16),
            "landmarks": np.ascontiguousarray(landmarks, dtype=np.float32),
            "source_video": str(record.source_video),
            "source_start": _finite_float(record.source_start, "source_start", cid),
            "source_end": _finite_float(record.source_end, "source_end", cid),
            "frame_time": _finite_float(record.frame_time, "frame_time", cid),
            "metadata": _metadata_json(record.metadata, cid),
        }

    def write(self, record: ClipRecord) -> str:
        """Checks and appends one clip.

        Args:
            record: The clip. ``audio`` longer than ``max_seconds`` is rejected.

        Returns:
            The split the clip went to.

        Raises:
            ValueError: One line naming the clip, for a wrong dtype, shape or length, a duplicate
                ``clip_id``, or a split that contradicts the speaker's earlier clips.
        """
        if self._manifest is not None:
            raise RuntimeError("this ShardWriter is closed")
        if not isinstance(record.clip_id, str) or not record.clip_id:
            raise ValueError(f"clip_id must be a non-empty string, got {record.clip_id!r}")
        if not isinstance(record.speaker_id, str) or not record.speaker_id:
            raise ValueError(f"clip {record.clip_id!r}: speaker_id must be a non-empty string")
        if record.clip_id in self._clip_ids:
            raise ValueError(f"clip {record.clip_id!r} was already written; clip ids must be unique")
        # Validate and encode before committing the speaker's split, so a rejected clip assigns nothing.
        known = self._speaker_split.get(record.speaker_id)
        split = self._choose_split(record)
        try:
            row = self._row(record, split)
        except Exception:
            if known is None:
                del self._speaker_split[record.speaker_id]
            raise
        state = self._splits.get(split)
        if state is None:
            state = _SplitState(
                BinaryWriter(_join(self.root, split), chunk_bytes=self.chunk_bytes, serializers=_serializers())
            )
            self._splits[split] = state
        state.writer.add_item(state.next_index, row)
        state.next_index += 1
        state.speakers.add(record.speaker_id)
        self._clip_ids.add(record.clip_id)
        return split

    def close(self) -> ShardManifest:
        """Flushes the last chunks, writes each split's ``index.json``, then ``s2f_shards.json``.

        Calling it again returns the same manifest.
        """
        if self._manifest is not None:
            return self._manifest
        splits: dict[str, SplitInfo] = {}
        for name in SPLITS:
            state = self._splits.get(name)
            if state is None:
                continue
            state.writer.done()
            _merge_own_index(_join(self.root, name))
            _check_index(_join(self.root, name))
            splits[name] = SplitInfo(clips=state.next_index, speakers=len(state.speakers))
        manifest = ShardManifest(
            root=self.root,
            teacher=self.teacher,
            embed_dim=self.embed_dim,
            splits=splits,
            max_seconds=self.max_seconds,
            audio_codec=self.audio_codec,
        )
        with atomic_open(os.path.join(self.root, MANIFEST_NAME)) as handle:
            json.dump(manifest.to_dict(), handle, indent=2)
            handle.write("\n")
        self._manifest = manifest
        return manifest


def _merge_own_index(split_dir: str) -> None:
    """Turns the writer's ``{rank}.index.json`` into ``index.json``.

    litdata's own merge waits for one index per rank of the process group, which would hang when
    ranks write separate roots; a ShardWriter is the only writer of its folder, so there is one file.
    """
    own = [name for name in os.listdir(split_dir) if name.endswith("." + INDEX_NAME) and name.split(".")[0].isdigit()]
    if len(own) != 1:
        raise RuntimeError(f"{split_dir}: expected one writer index, found {sorted(own)}")
    with open(os.path.join(split_dir, own[0]), encoding="utf-8") as handle:
        index = json.load(handle)
    index = add_checksums(split_dir, index)
    index["updated_at"] = str(time.time())
    target = os.path.join(split_dir, INDEX_NAME)
    with atomic_open(target) as handle:
        json.dump(index, handle, sort_keys=True)
    os.remove(os.path.join(split_dir, own[0]))

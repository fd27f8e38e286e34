"""The on-disk shard format: one row per clip, one litdata dataset per split, a JSON manifest on top.

A shard root looks like this (see ``docs/shards.md`` for every field)::

    ROOT/s2f_shards.json    manifest: format, version, teacher, embed_dim, audio codec, splits
    ROOT/train/             litdata dataset (index.json + chunk-*.bin)
    ROOT/val/
    ROOT/test/

Rows hold only ``str``, ``int``, ``float``, ``bytes`` and numpy arrays, so every field goes through one
of litdata's fixed binary serializers and nothing is ever pickled. Audio is stored as int16 (FLAC or raw
little-endian PCM), the face crop as a JPEG, the teacher embedding as float16. Spectrograms are not
stored: the model computes them on the training device.

Example:
    >>> import numpy as np, tempfile
    >>> root = tempfile.mkdtemp()
    >>> with ShardWriter(root, teacher="toy", embed_dim=4) as writer:
    ...     writer.write(ClipRecord(clip_id="c0", speaker_id="s0", audio=np.zeros(16_000, np.int16),
    ...                             face=np.zeros((224, 224, 3), np.uint8), embedding=np.ones(4), split="val"))
    'val'
    >>> read_manifest(root).splits["val"].clips
    1
    >>> next(iter_records(root, "val")).clip_id
    'c0'

Modules: :mod:`~s2f.shards.format` (constants, row and manifest types, splits), :mod:`~s2f.shards.codec`
(field encodings), :mod:`~s2f.shards.writer`, :mod:`~s2f.shards.reader`, :mod:`~s2f.shards.remote` (object storage).
"""

from __future__ import annotations

from .format import (
    AUDIO_CODECS,
    FACE_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    SAMPLE_RATE,
    SPLITS,
    ClipRecord,
    ShardManifest,
    SplitInfo,
    assign_split,
)
from .reader import ClipDataset, iter_records, mean_embedding, read_embeddings, read_manifest
from .writer import ShardWriter

__all__ = [
    "AUDIO_CODECS",
    "FACE_SIZE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SAMPLE_RATE",
    "SPLITS",
    "ClipDataset",
    "ClipRecord",
    "ShardManifest",
    "ShardWriter",
    "SplitInfo",
    "assign_split",
    "iter_records",
    "mean_embedding",
    "read_embeddings",
    "read_manifest",
]

"""The shard format's definition: its constants, the row and manifest types, and how speakers get splits.

Everything here is plain data; reading and writing live in :mod:`s2f.shards.reader` and
:mod:`s2f.shards.writer`, the field encodings in :mod:`s2f.shards.codec`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from litdata.streaming.serializers import (
    BytesSerializer,
    FloatSerializer,
    IntegerSerializer,
    NoHeaderNumpySerializer,
    NumpySerializer,
    Serializer,
    StringSerializer,
)

from s2f._version import __version__

__all__ = [
    "AUDIO_CODECS",
    "DEFAULT_SPLIT_FRACTIONS",
    "FACE_SIZE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SAMPLE_RATE",
    "SPLITS",
    "ClipRecord",
    "ShardManifest",
    "SplitInfo",
    "assign_split",
]

FORMAT_NAME = "s2f-shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "s2f_shards.json"
SPLITS = ("train", "val", "test")
# Shares of the speakers that no record places, in SPLITS' order (s2f prepare's --split_fractions).
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SAMPLE_RATE = 16_000
FACE_SIZE = 224
JPEG_QUALITY = 95
AUDIO_CODECS = ("flac", "pcm16")
INDEX_NAME = "index.json"

_MANIFEST_KEYS = frozenset(
    {"format", "version", "s2f_version", "teacher", "embed_dim", "sample_rate", "max_seconds", "audio_codec"}
    | {"face_size", "splits"}
)
# The only litdata serializers a row may use; anything else (notably "pickle") means a bug.
_ALLOWED_FORMATS = ("str", "int", "float", "bytes", "numpy", "no_header_numpy")
# Largest finite float16; embeddings beyond it would silently become inf on disk.
_FP16_MAX = float(np.finfo(np.float16).max)


class _StrictStringSerializer(StringSerializer):
    """Stores every ``str`` as UTF-8.

    litdata's own string serializer declines strings that name an existing file, so a ``source_video``
    such as ``"clips/a.mp4"`` would be stored as the *video file's bytes* (or pickled). Ids and paths
    here are labels, never file contents.
    """

    def can_serialize(self, data: Any) -> bool:
        return isinstance(data, str)


def _serializers() -> dict[str, Serializer]:
    # litdata tries user serializers first, in this order, before its media-sniffing defaults.
    # The keys are litdata's default names, so readers decode with the stock serializers.
    return {
        "str": _StrictStringSerializer(),
        "bytes": BytesSerializer(),
        "int": IntegerSerializer(),
        "float": FloatSerializer(),
        "no_header_numpy": NoHeaderNumpySerializer(),
        "numpy": NumpySerializer(),
    }


# --------------------------------------------------------------------------------------------- records


def _empty_landmarks() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float32)


@dataclass
class ClipRecord:
    """One clip as written to or read from shards.

    Attributes:
        clip_id: Unique id of the clip within the shard root.
        speaker_id: Id of the speaker; splits are assigned per speaker.
        audio: Mono 16 kHz samples [T], int16 or float in [-1, 1]. Read back as int16.
        face: RGB face crop, uint8 [224, 224, 3].
        embedding: The teacher's embedding of ``face`` [D]. Stored (and read back) as float16.
        landmarks: Facial landmarks [K, 2] in pixel coordinates of the crop; K may be 0.
        split: ``"train"``, ``"val"`` or ``"test"``; ``None`` lets the writer pick by speaker hash.
        source_video: Where the clip came from (video id or file name); a label, never opened.
        source_start: Start of the clip in the source, in seconds.
        source_end: End of the clip in the source, in seconds.
        frame_time: Time of the face frame in the source, in seconds.
        metadata: Optional labels (gender, age, language, ...), JSON scalars keyed by name.
    """

    clip_id: str
    speaker_id: str
    audio: np.ndarray
    face: np.ndarray
    embedding: np.ndarray
    landmarks: np.ndarray = field(default_factory=_empty_landmarks)
    split: str | None = None
    source_video: str = ""
    source_start: float = 0.0
    source_end: float = 0.0
    frame_time: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitInfo:
    """How many clips and speakers one split holds."""

    clips: int
    speakers: int


@dataclass(frozen=True)
class ShardManifest:
    """The contents of ``s2f_shards.json``: what every row of a shard root shares.

    Attributes:
        root: The shard root this manifest was read from or written to (not stored in the file).
        teacher: Name of the face network whose embeddings the rows hold.
        embed_dim: Length D of every embedding.
        splits: Clip and speaker counts of each split present on disk.
        sample_rate: Audio sample rate in Hz (always 16000 in format v1).
        max_seconds: Longest clip the writer accepted, in seconds.
        audio_codec: ``"flac"`` or ``"pcm16"``.
        face_size: Side of the square face crops in pixels.
        s2f_version: Version of s2f that wrote the shards (by default, this one).
        format: Always ``"s2f-shards"``.
        version: Format version, :data:`FORMAT_VERSION` for shards this s2f can read.
        extra: Optional top-level keys beyond the required ones, kept as read and written back
            (``s2f prepare`` adds ``landmarks``, the landmark scheme of the rows, and ``prepare``,
            its counts and settings). Readers that do not know a key ignore it.
    """

    root: str
    teacher: str
    embed_dim: int
    splits: dict[str, SplitInfo]
    sample_rate: int = SAMPLE_RATE
    max_seconds: float = 6.0
    audio_codec: str = "flac"
    face_size: int = FACE_SIZE
    s2f_version: str = __version__
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_clips(self) -> int:
        """Clips over all splits."""
        return sum(info.clips for info in self.splits.values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in ``s2f_shards.json``."""
        return {
            **self.extra,
            "format": self.format,
            "version": self.version,
            "s2f_version": self.s2f_version,
            "teacher": self.teacher,
            "embed_dim": self.embed_dim,
            "sample_rate": self.sample_rate,
            "max_seconds": self.max_seconds,
            "audio_codec": self.audio_codec,
            "face_size": self.face_size,
            "splits": {name: {"clips": info.clips, "speakers": info.speakers} for name, info in self.splits.items()},
        }


# --------------------------------------------------------------------------------------------- paths


def _is_url(path: str) -> bool:
    return "://" in path


def _join(root: str, *names: str) -> str:
    if _is_url(root):
        return "/".join([root.rstrip("/"), *names])
    return os.path.join(root, *names)


def _root_str(root: str | os.PathLike[str]) -> str:
    text = os.fspath(root)
    return text if _is_url(text) else os.path.abspath(text)


# --------------------------------------------------------------------------------------------- splits


def _check_fractions(split_fractions: Sequence[float]) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in split_fractions)
    if len(fractions) != len(SPLITS) or any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(
            f"split_fractions must be three non-negative numbers (train, val, test), got {split_fractions}"
        )
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split_fractions must add up to 1, got {split_fractions} (sum {sum(fractions)})")
    return fractions[0], fractions[1], fractions[2]


def assign_split(speaker_id: str, split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> str:
    """The split a speaker lands in when no record names one: a stable hash against the fractions.

    sha1 (not Python's salted ``hash``) keeps the answer identical across processes, machines and
    Python versions, so re-running ``s2f prepare`` never moves a speaker between splits.

    Example:
        >>> assign_split("id10001") == assign_split("id10001")
        True
        >>> assign_split("anyone", (0.0, 1.0, 0.0))
        'val'
    """
    fractions = _check_fractions(split_fractions)
    digest = hashlib.sha1(speaker_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    cumulative = 0.0
    for name, fraction in zip(SPLITS, fractions, strict=True):
        cumulative += fraction
        if position < cumulative:
            return name
    # Rounding can leave the top sliver uncovered; give it to the last split that has any share.
    return next(name for name, fraction in zip(reversed(SPLITS), reversed(fractions), strict=True) if fraction > 0)

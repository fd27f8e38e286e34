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
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset
from litdata.streaming.serializers import (
    BytesSerializer,
    FloatSerializer,
    IntegerSerializer,
    NoHeaderNumpySerializer,
    NumpySerializer,
    Serializer,
    StringSerializer,
)
from litdata.streaming.writer import BinaryWriter

from s2f.errors import ShardFormatError

from .remote import RemoteFileNotFound, allow_plain_http_endpoint, read_remote_text

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
    "read_manifest",
]

FORMAT_NAME = "s2f-shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "s2f_shards.json"
SPLITS = ("train", "val", "test")
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


def _s2f_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("s2f")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


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
        s2f_version: Version of s2f that wrote the shards.
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
    s2f_version: str = "0+unknown"
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


# --------------------------------------------------------------------------------------------- manifest


def _manifest_error(path: str, problem: str) -> ShardFormatError:
    return ShardFormatError(f"{path}: {problem}; re-run `s2f prepare` to rebuild the shards")


def read_manifest(root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> ShardManifest:
    """Reads and checks ``ROOT/s2f_shards.json``.

    Args:
        root: A shard root written by :class:`ShardWriter`: a local path, or a URL. ``s3://`` needs only
            boto3 (endpoint and credentials from the usual ``AWS_*`` settings); other schemes need their
            fsspec backend.
        storage_options: Options for the object-store client (litdata's ``storage_options``), e.g.
            ``{"endpoint_url": "http://minio:9000"}``; ignored for local paths.

    Returns:
        The manifest.

    Raises:
        ShardFormatError: One line naming the path and the fix, when the root or its manifest is
            missing, the manifest is malformed, or its format version is not :data:`FORMAT_VERSION`.
    """
    root_s = _root_str(root)
    path = _join(root_s, MANIFEST_NAME)
    text = _read_manifest_text(root_s, path, storage_options)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _manifest_error(path, f"not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict):
        raise _manifest_error(path, "not a JSON object")
    if data.get("format") != FORMAT_NAME:
        raise ShardFormatError(
            f"{path}: format is {data.get('format')!r}, not {FORMAT_NAME!r}, so this is not an s2f shard manifest; "
            "point s2f at a folder written by `s2f prepare`"
        )
    version = data.get("version")
    if version != FORMAT_VERSION:
        writer = data.get("s2f_version", "an unknown s2f")
        raise ShardFormatError(
            f"{path}: written by s2f {writer} with shard format version {version}; this s2f ({_s2f_version()}) "
            f"reads format version {FORMAT_VERSION}: re-run `s2f prepare` or upgrade s2f"
        )
    try:
        splits = {
            str(name): SplitInfo(clips=int(info["clips"]), speakers=int(info["speakers"]))
            for name, info in dict(data["splits"]).items()
        }
        manifest = ShardManifest(
            root=root_s,
            teacher=str(data["teacher"]),
            embed_dim=int(data["embed_dim"]),
            splits=splits,
            sample_rate=int(data["sample_rate"]),
            max_seconds=float(data["max_seconds"]),
            audio_codec=str(data["audio_codec"]),
            face_size=int(data["face_size"]),
            s2f_version=str(data.get("s2f_version", "0+unknown")),
            extra={key: value for key, value in data.items() if key not in _MANIFEST_KEYS},
        )
    except KeyError as err:
        raise _manifest_error(path, f"missing field {err.args[0]!r}") from err
    except (TypeError, ValueError) as err:
        raise _manifest_error(path, f"malformed field ({err})") from err
    if manifest.audio_codec not in AUDIO_CODECS:
        raise _manifest_error(path, f"unknown audio_codec {manifest.audio_codec!r} (expected one of {AUDIO_CODECS})")
    unknown = sorted(set(manifest.splits) - set(SPLITS))
    if unknown:
        raise _manifest_error(path, f"unknown splits {unknown} (expected some of {list(SPLITS)})")
    return manifest


def _read_manifest_text(root: str, path: str, storage_options: Mapping[str, Any] | None = None) -> str:
    if _is_url(root):
        try:
            return read_remote_text(path, storage_options)
        except RemoteFileNotFound as err:
            raise ShardFormatError(
                f"{path} does not exist: {root} is not an s2f shard root; run `s2f prepare` or fix the path"
            ) from err
        except (ImportError, ValueError) as err:
            raise ShardFormatError(
                f"{path}: cannot open this URL ({_first_line(err)}); install the fsspec backend for it (e.g. gcsfs)"
            ) from err
        except OSError as err:
            raise ShardFormatError(
                f"{path}: cannot read it ({_first_line(err)}); check the endpoint (AWS_ENDPOINT_URL) and credentials"
            ) from err
    if not os.path.isdir(root):
        raise ShardFormatError(
            f"{root}: shard directory does not exist; run `s2f prepare` to create it or fix the path"
        )
    if not os.path.isfile(path):
        raise ShardFormatError(
            f"{path} does not exist: {root} is not an s2f shard root (or `s2f prepare` did not finish); "
            "run `s2f prepare` to (re)build it"
        )
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _split_dir(manifest: ShardManifest, split: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """Directory of ``split``, after checking it exists; one-line error otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if split not in manifest.splits:
        present = ", ".join(manifest.splits) or "none"
        raise ShardFormatError(
            f"{manifest.root} has no {split!r} split (splits on disk: {present}); "
            f"re-run `s2f prepare` with speakers assigned to {split!r} or read another split"
        )
    path = _join(manifest.root, split)
    if not _is_url(path) and not os.path.isfile(os.path.join(path, INDEX_NAME)):
        raise ShardFormatError(
            f"{os.path.join(path, INDEX_NAME)} is missing although the manifest lists split {split!r}; "
            "the shards are incomplete: re-run `s2f prepare`"
        )
    if _is_url(path):
        _check_remote_index(path, storage_options)
    else:
        _check_index(path)
    return path


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


def assign_split(speaker_id: str, split_fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
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


# --------------------------------------------------------------------------------------------- encoding


def _encode_audio(samples: np.ndarray, codec: str) -> bytes:
    if codec == "pcm16":
        return samples.astype("<i2", copy=False).tobytes()
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _decode_audio(data: bytes | memoryview, codec: str, num_samples: int, clip_id: str) -> np.ndarray:
    if codec == "pcm16":
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    else:
        import soundfile

        samples, _ = soundfile.read(io.BytesIO(bytes(data)), dtype="int16", always_2d=False)
    if samples.shape != (num_samples,):
        raise ShardFormatError(
            f"clip {clip_id!r}: audio decodes to {samples.shape[0]} samples but the row says {num_samples}; "
            "the shard is corrupt: re-run `s2f prepare`"
        )
    return samples


def _encode_face(face: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(face, mode="RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _decode_face(data: bytes | memoryview) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(bytes(data))) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, unlike np.asarray


def _to_int16(audio: np.ndarray, clip_id: str) -> np.ndarray:
    if audio.dtype == np.int16:
        return np.ascontiguousarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"clip {clip_id!r}: audio must be int16 or float in [-1, 1], got dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError(f"clip {clip_id!r}: audio holds NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        raise ValueError(f"clip {clip_id!r}: float audio must lie in [-1, 1], peak is {peak:.3f}")
    # x * 32768 mirrors soundfile's int16 <-> float convention, so float audio that came from int16
    # (every WAV/FLAC that load_audio reads) gets back its exact original samples.
    return np.clip(np.round(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _finite_float(value: Any, name: str, clip_id: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"clip {clip_id!r}: {name} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise ValueError(f"clip {clip_id!r}: {name} must be finite, got {value!r}")
    return number


def _metadata_json(metadata: Mapping[str, Any], clip_id: str) -> str:
    if not isinstance(metadata, Mapping):
        raise ValueError(f"clip {clip_id!r}: metadata must be a dict, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"clip {clip_id!r}: metadata keys must be strings, got {key!r}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValueError(
                f"clip {clip_id!r}: metadata[{key!r}] must be a string, number, bool or None, "
                f"got {type(value).__name__}"
            )
    try:
        return json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"clip {clip_id!r}: metadata is not JSON-serializable ({err})") from err


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
    merges them, see :mod:`s2f.data.parts`). Split assignment is per speaker: a record's explicit
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
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
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
            sample_rate=SAMPLE_RATE,
            max_seconds=self.max_seconds,
            audio_codec=self.audio_codec,
            face_size=FACE_SIZE,
            s2f_version=_s2f_version(),
        )
        path = os.path.join(self.root, MANIFEST_NAME)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(manifest.to_dict(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
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
    index["updated_at"] = str(time.time())
    target = os.path.join(split_dir, INDEX_NAME)
    with open(target + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(index, handle, sort_keys=True)
    os.replace(target + ".tmp", target)
    os.remove(os.path.join(split_dir, own[0]))


def _check_index(split_dir: str) -> None:
    """Refuses an index whose rows would need a serializer outside the fixed, pickle-free set.

    Reading such rows would unpickle whatever the file holds, so shards from elsewhere are checked too.
    """
    index = os.path.join(split_dir, INDEX_NAME)
    try:
        with open(index, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ShardFormatError(
            f"{index}: not a readable litdata index ({_first_line(exc)}); re-run `s2f prepare`"
        ) from None
    _check_index_text(index, text)


def _check_remote_index(split_url: str, storage_options: Mapping[str, Any] | None) -> None:
    """:func:`_check_index` for a split in object storage: the same pickle check, before litdata reads a row."""
    index = _join(split_url, INDEX_NAME)
    try:
        text = read_remote_text(index, storage_options)
    except RemoteFileNotFound:
        raise ShardFormatError(
            f"{index} is missing although the manifest lists this split; the upload is incomplete: "
            "copy the whole shard root again"
        ) from None
    except (ImportError, ValueError, OSError) as exc:
        raise ShardFormatError(
            f"{index}: cannot read it ({_first_line(exc)}); check the endpoint (AWS_ENDPOINT_URL) and credentials"
        ) from None
    _check_index_text(index, text)


def _check_index_text(index: str, text: str) -> None:
    try:
        formats = json.loads(text)["config"]["data_format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardFormatError(
            f"{index}: not a readable litdata index ({_first_line(exc)}); re-run `s2f prepare`"
        ) from None
    bad = [name for name in formats if str(name).split(":", 1)[0] not in _ALLOWED_FORMATS]
    if bad:
        raise ShardFormatError(
            f"{index}: rows are stored as {bad}, which would be unpickled; s2f reads only {list(_ALLOWED_FORMATS)}"
        )


# --------------------------------------------------------------------------------------------- readers


def _record_from_row(row: Mapping[str, Any], codec: str) -> ClipRecord:
    clip_id = str(row["clip_id"])
    return ClipRecord(
        clip_id=clip_id,
        speaker_id=str(row["speaker_id"]),
        audio=_decode_audio(row["audio"], codec, int(row["num_samples"]), clip_id),
        face=_decode_face(row["face"]),
        embedding=np.asarray(row["embedding"], dtype=np.float16),
        landmarks=np.asarray(row["landmarks"], dtype=np.float32).reshape(-1, 2),
        split=str(row["split"]),
        source_video=str(row["source_video"]),
        source_start=float(row["source_start"]),
        source_end=float(row["source_end"]),
        frame_time=float(row["frame_time"]),
        metadata=json.loads(row["metadata"]),
    )


def iter_records(root: str | os.PathLike[str], split: str, **streaming_kwargs: Any) -> Iterator[ClipRecord]:
    """Reads every clip of one split in stored order, fully decoded (int16 audio, uint8 face).

    Meant for tools and tests; training reads through :class:`ClipDataset`.

    Args:
        root: Shard root (local path or URL).
        split: ``"train"``, ``"val"`` or ``"test"``.
        **streaming_kwargs: Passed to :class:`~litdata.StreamingDataset` (``cache_dir`` and
            ``storage_options`` for object storage).

    Raises:
        ShardFormatError: When the root, its manifest or the split is missing or incompatible.
    """
    manifest, dataset = _stored_rows(root, split, streaming_kwargs)
    for index in range(len(dataset)):
        yield _record_from_row(dataset[index], manifest.audio_codec)


def mean_embedding(
    root: str | os.PathLike[str], split: str = "train", *, max_clips: int = 10_000, **streaming_kwargs: Any
) -> torch.Tensor:
    """The mean teacher embedding [D] of the first ``max_clips`` clips of one split (float32).

    Reads only the embeddings: no audio or face is decoded.

    Raises:
        ShardFormatError: When the split is missing or holds no clips.
    """
    _, dataset = _stored_rows(root, split, streaming_kwargs)
    count = min(len(dataset), max_clips)
    if count == 0:
        raise ShardFormatError(f"{root}: split {split!r} holds no clips, so it has no mean embedding")
    total = sum(np.asarray(dataset[index]["embedding"], dtype=np.float64) for index in range(count))
    return torch.from_numpy(total / count).float()


def _stored_rows(
    root: str | os.PathLike[str], split: str, streaming_kwargs: dict[str, Any]
) -> tuple[ShardManifest, StreamingDataset]:
    """The manifest and the undecoded rows of one split, in stored order."""
    storage_options = streaming_kwargs.get("storage_options")
    manifest = read_manifest(root, storage_options)
    if _is_url(manifest.root):
        allow_plain_http_endpoint(storage_options)
    streaming_kwargs.setdefault("serializers", _serializers())
    return manifest, StreamingDataset(_split_dir(manifest, split, storage_options), shuffle=False, **streaming_kwargs)


class ClipDataset(StreamingDataset):
    """One split of a shard root as a litdata :class:`~litdata.StreamingDataset` of decoded clips.

    litdata spreads chunks over ranks and DataLoader workers, shuffles chunks and the rows within
    them, and can resume mid-epoch through :class:`~litdata.StreamingDataLoader`'s state.

    Each item is a dict: ``clip_id`` (str), ``speaker_id`` (str), ``audio`` (float32 tensor [T] in
    [-1, 1], T <= max_seconds * 16000), ``embedding`` (float32 tensor [D]), ``landmarks`` (float32
    tensor [K, 2]), ``metadata`` (dict), and ``face`` (uint8 tensor [3, 224, 224]) when
    ``decode_faces`` is set (JPEG decoding costs CPU the voice encoder does not need).

    Args:
        root: Shard root written by :class:`ShardWriter`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        shuffle: Shuffle chunks and rows (a different order every epoch, fixed by ``seed``).
        decode_faces: Also decode the face crop.
        seed: Seed of the shuffle.
        drop_last: Drop the tail so every rank and worker yields the same number of batches;
            ``None`` lets litdata choose (on under distributed training, off otherwise).
        **streaming_kwargs: Passed to :class:`~litdata.StreamingDataset` (e.g. ``cache_dir``,
            ``max_cache_size``, ``storage_options`` for object storage).

    Raises:
        ShardFormatError: When the root, its manifest or the split is missing or incompatible.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        shuffle: bool = False,
        decode_faces: bool = False,
        seed: int = 42,
        drop_last: bool | None = False,
        **streaming_kwargs: Any,
    ) -> None:
        storage_options = streaming_kwargs.get("storage_options")
        self.manifest = read_manifest(root, storage_options)
        if _is_url(self.manifest.root):
            allow_plain_http_endpoint(storage_options)
        self.split = split
        self.decode_faces = decode_faces
        streaming_kwargs.setdefault("serializers", _serializers())
        super().__init__(
            _split_dir(self.manifest, split, storage_options),
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            **streaming_kwargs,
        )

    def decode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Turns one stored row into the training item described in the class docstring."""
        clip_id = str(row["clip_id"])
        samples = _decode_audio(row["audio"], self.manifest.audio_codec, int(row["num_samples"]), clip_id)
        item: dict[str, Any] = {
            "clip_id": clip_id,
            "speaker_id": str(row["speaker_id"]),
            "audio": torch.from_numpy(samples.astype(np.float32) / 32768.0),
            "embedding": torch.from_numpy(np.asarray(row["embedding"], dtype=np.float32)),
            "landmarks": torch.from_numpy(np.array(row["landmarks"], dtype=np.float32).reshape(-1, 2)),
            "metadata": json.loads(row["metadata"]),
        }
        if self.decode_faces:
            item["face"] = torch.from_numpy(_decode_face(row["face"])).permute(2, 0, 1).contiguous()
        return item

    def __getitem__(self, index: Any) -> Any:
        row = super().__getitem__(index)
        if isinstance(row, list):  # a slice
            return [self.decode(r) for r in row]
        return self.decode(row)

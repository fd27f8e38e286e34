"""Build shards from (speaker, audio file, face image file) pairs: the simplest way in.

Each pair gives a speech file and an image that is already a face crop of the same speaker. The
builder keeps the first ``max_seconds`` of audio, resizes the face to 224x224 RGB, embeds faces with
the teacher in batches, and writes :class:`~s2f.shards.ClipRecord` rows. A CSV of pairs looks
like this (paths relative to the CSV's folder; columns beyond the known ones become metadata)::

    speaker_id,audio,face,clip_id,split,gender
    id001,id001/a.wav,id001/a.jpg,id001-a,,female

Every bad row stops the build with one line naming the row and the file: silently dropping clips
would bias the speaker mix without anyone noticing.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from s2f.errors import S2FError
from s2f.shards import FACE_SIZE, SAMPLE_RATE, ClipRecord, ShardManifest, ShardWriter
from s2f.shards.format import DEFAULT_SPLIT_FRACTIONS

if TYPE_CHECKING:
    import torch

__all__ = ["PairItem", "build_shards_from_pairs", "read_pairs_csv"]

_KNOWN_COLUMNS = ("speaker_id", "audio", "face", "clip_id", "split")
_REQUIRED_COLUMNS = ("speaker_id", "audio", "face")


class _Teacher(Protocol):
    """What the builder needs from a face teacher (``s2f.teachers.FaceTeacher`` has it)."""

    name: str
    embed_dim: int

    def embed_images(self, images: torch.Tensor) -> torch.Tensor: ...


@dataclass
class PairItem:
    """One (speaker, audio, face) pair.

    Attributes:
        speaker_id: Id of the speaker; splits are assigned per speaker.
        audio: Speech file (anything :func:`s2f.audio.load_audio` reads).
        face: Image file holding a face crop of the speaker (any size; resized to 224x224).
        clip_id: Unique clip id; defaults to the audio path without its extension.
        split: ``"train"``, ``"val"`` or ``"test"``; ``None`` assigns by speaker hash.
        metadata: Optional labels (gender, age, language, ...).
        source_video: Provenance label stored with the clip; defaults to the audio path.
        where: Where the pair came from, for error messages (e.g. ``"pairs.csv:12"``).
    """

    speaker_id: str
    audio: str | os.PathLike[str]
    face: str | os.PathLike[str]
    clip_id: str | None = None
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_video: str | None = None
    where: str = ""


def read_pairs_csv(path: str | os.PathLike[str]) -> list[PairItem]:
    """Reads a pairs CSV; relative ``audio`` and ``face`` paths become relative to the CSV's folder.

    Columns: ``speaker_id``, ``audio``, ``face`` (required), ``clip_id``, ``split`` (optional, may
    be empty), and any others, which become metadata (empty cells are left out).

    Raises:
        S2FError: One line naming the CSV, when it is missing or lacks a required column or value.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise S2FError(f"{csv_path}: pairs CSV does not exist; give a CSV with columns speaker_id,audio,face")
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise S2FError(
                f"{csv_path}: missing column(s) {', '.join(missing)}; the header must name speaker_id,audio,face "
                "(optionally clip_id, split, and metadata columns)"
            )
        pairs = []
        for line, raw in enumerate(reader, start=2):
            row = {(key or "").strip(): (value or "").strip() for key, value in raw.items() if key is not None}
            where = f"{csv_path}:{line}"
            for name in _REQUIRED_COLUMNS:
                if not row.get(name):
                    raise S2FError(f"{where}: empty {name!r}; every row needs speaker_id, audio and face")
            pairs.append(
                PairItem(
                    speaker_id=row["speaker_id"],
                    audio=_under(base, row["audio"]),
                    face=_under(base, row["face"]),
                    # The CSV's own relative path is a stable, machine-independent id.
                    clip_id=row.get("clip_id") or _strip_suffix(row["audio"]),
                    split=row.get("split") or None,
                    metadata={k: v for k, v in row.items() if k not in _KNOWN_COLUMNS and k and v},
                    # As written in the CSV: no machine-specific absolute paths inside the shards.
                    source_video=row["audio"],
                    where=where,
                )
            )
    return pairs


def _under(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _strip_suffix(path: str) -> str:
    return Path(path).with_suffix("").as_posix()


def _read_face(path: str | os.PathLike[str], where: str) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            # Phone photos store their rotation in EXIF; apply it so the face is upright.
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except FileNotFoundError as err:
        raise S2FError(f"{where}{path}: face image does not exist; fix the path") from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise S2FError(f"{where}{path}: cannot read the face image ({reason}); give a JPEG or PNG face crop") from err
    if rgb.size != (FACE_SIZE, FACE_SIZE):
        rgb = rgb.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def _read_audio(path: str | os.PathLike[str], where: str, max_samples: int) -> np.ndarray:
    from s2f.audio import load_audio
    from s2f.errors import AudioError

    try:
        wave = load_audio(os.fspath(path), sample_rate=SAMPLE_RATE)
    except AudioError as err:
        message = str(err)
        # load_audio already names the file; add the row so the user can find it in the CSV.
        raise AudioError(f"{where}{message}" if os.fspath(path) in message else f"{where}{path}: {message}") from err
    return wave[:max_samples].numpy()


def _as_pairs(pairs: Iterable[PairItem] | str | os.PathLike[str]) -> Iterator[PairItem]:
    if isinstance(pairs, (str, os.PathLike)):
        yield from read_pairs_csv(pairs)
        return
    for number, pair in enumerate(pairs):
        if not isinstance(pair, PairItem):
            raise TypeError(f"pair #{number} must be a PairItem, got {type(pair).__name__}")
        yield pair if pair.where else PairItem(**{**pair.__dict__, "where": f"pair #{number}"})


def build_shards_from_pairs(
    pairs: Iterable[PairItem] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    teacher: _Teacher,
    *,
    batch_size: int = 16,
    max_seconds: float = 6.0,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    audio_codec: str = "flac",
    chunk_bytes: int | str = "64MB",
    overwrite: bool = False,
) -> ShardManifest:
    """Writes a shard root from audio/face pairs, embedding each face with ``teacher``.

    Args:
        pairs: :class:`PairItem` objects, or the path of a pairs CSV (see :func:`read_pairs_csv`).
        out_dir: Shard root to create.
        teacher: Frozen face network with ``name``, ``embed_dim`` and ``embed_images(uint8 [B, 3, 224,
            224]) -> [B, D]``.
        batch_size: Faces per teacher call.
        max_seconds: Audio beyond the first ``max_seconds`` is dropped.
        split_fractions: Train, val and test shares for pairs without a split.
        audio_codec: ``"flac"`` or ``"pcm16"`` (see :class:`~s2f.shards.ShardWriter`).
        chunk_bytes: Target size of one chunk file.
        overwrite: Replace shards already in ``out_dir``.

    Returns:
        The manifest of the written shards.

    Raises:
        AudioError: When an audio file is missing, unreadable, empty or silent (names row and file).
        S2FError: When a face image is missing or unreadable, or the CSV is malformed.
        ValueError: When the teacher returns embeddings of the wrong shape, or the writer rejects a clip.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    max_samples = round(max_seconds * SAMPLE_RATE)
    pending: list[tuple[PairItem, np.ndarray, np.ndarray]] = []

    with ShardWriter(
        out_dir,
        teacher=teacher.name,
        embed_dim=teacher.embed_dim,
        split_fractions=split_fractions,
        audio_codec=audio_codec,
        max_seconds=max_seconds,
        chunk_bytes=chunk_bytes,
        overwrite=overwrite,
    ) as writer:
        for pair in _as_pairs(pairs):
            where = f"{pair.where}: " if pair.where else ""
            audio = _read_audio(pair.audio, where, max_samples)
            face = _read_face(pair.face, where)
            pending.append((pair, audio, face))
            if len(pending) >= batch_size:
                _embed_and_write(writer, teacher, pending)
        if pending:
            _embed_and_write(writer, teacher, pending)
    return writer.manifest


def _embed_and_write(
    writer: ShardWriter, teacher: _Teacher, pending: list[tuple[PairItem, np.ndarray, np.ndarray]]
) -> None:
    """Embeds the pending faces in one teacher call, writes their rows, and empties ``pending``."""
    import torch

    faces = torch.from_numpy(np.stack([face for _, _, face in pending])).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        embeddings = teacher.embed_images(faces)
    if tuple(embeddings.shape) != (len(pending), teacher.embed_dim):
        raise ValueError(
            f"teacher {teacher.name!r} returned embeddings of shape {tuple(embeddings.shape)} for "
            f"{len(pending)} faces; expected ({len(pending)}, {teacher.embed_dim})"
        )
    vectors = embeddings.detach().float().cpu().numpy()
    for (pair, audio, face), vector in zip(pending, vectors, strict=True):
        writer.write(
            ClipRecord(
                clip_id=pair.clip_id or _strip_suffix(os.fspath(pair.audio)),
                speaker_id=pair.speaker_id,
                audio=audio,
                face=face,
                embedding=vector,
                split=pair.split,
                source_video=pair.source_video or os.fspath(pair.audio),
                source_start=0.0,
                source_end=audio.shape[0] / SAMPLE_RATE,
                frame_time=0.0,
                metadata=dict(pair.metadata),
            )
        )
    pending.clear()

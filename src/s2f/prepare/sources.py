"""Where clips come from: AVSpeech CSVs, VoxCeleb trees, plain folders and manifests, as :class:`ClipTask` lists.

A reader only lists clips and finds their files; nothing is decoded here. A clip whose media file
cannot be found is still listed, with its :attr:`ClipTask.problem` set, so that it is reported in
the rejects file instead of vanishing. A malformed *listing* (a CSV line that does not parse, a
contradiction) is an error that names the file and line, since it means the input is not what the
user thinks it is.

Times: ``start`` and ``end`` are seconds in the *source* (the YouTube video for AVSpeech);
``offset`` is the source time at which the media file begins (0 for a full video, the segment
start for a pre-cut segment file), so media time = source time - offset.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "avspeech.csv").write_text("abc-123_xy,12.0,17.5,0.4,0.3\\n")
    >>> (task,) = read_avspeech(root / "avspeech.csv", root)
    >>> task.clip_id, task.speaker_id, task.center, task.problem[0]
    ('abc-123_xy_12.000_17.500', 'abc-123_xy', (0.4, 0.3), 'video_missing')
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2f.errors import S2FError

from .rejects import NO_VIDEO, VIDEO_MISSING, Reject

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "SPLIT_DEV",
    "VIDEO_EXTENSIONS",
    "ClipTask",
    "read_avspeech",
    "read_manifest_csv",
    "scan_folder",
    "scan_voxceleb",
]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi", ".flv", ".mpg", ".mpeg", ".ts")
AUDIO_EXTENSIONS = (".wav", ".flac", ".m4a", ".mp3", ".ogg", ".opus", ".aac")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# A split value meaning "hash this speaker into train or val, never test" (VoxCeleb's dev set).
SPLIT_DEV = "dev"
_SPLIT_VALUES = ("train", "val", "test", SPLIT_DEV)


@dataclass
class ClipTask:
    """One clip to prepare: its ids, its media files and what the source says about it.

    Attributes:
        clip_id: Unique id of the clip in the shard root.
        speaker_id: Speaker id; splits are assigned per speaker.
        video: A file with sound and picture (mp4, mkv, webm, ...).
        audio: A sound file, when the picture comes from ``image`` instead.
        image: A face image paired with ``audio``.
        start: Segment start in the source, seconds.
        end: Segment end in the source, seconds; ``None`` runs to the end of the file.
        offset: Source time at which the media file begins (a pre-cut segment file: its start).
        center: The speaker's face center in the frame, as fractions of width and height.
        split: ``"train"``, ``"val"``, ``"test"``, ``"dev"`` (train or val by hash) or ``None`` (by hash).
        metadata: Labels stored with the clip (gender, nationality, ...).
        source: Provenance label stored as the row's ``source_video`` (a video id or relative path).
        where: Where the clip was listed, for messages (``"avspeech.csv:12"``).
        problem: ``(reason, detail)`` when the clip cannot be prepared at all (its media are missing).
    """

    clip_id: str
    speaker_id: str
    video: str | None = None
    audio: str | None = None
    image: str | None = None
    start: float = 0.0
    end: float | None = None
    offset: float = 0.0
    center: tuple[float, float] | None = None
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    where: str = ""
    problem: tuple[str, str] | None = None

    @property
    def media(self) -> str:
        """The file the sound comes from (for messages and the rejects file)."""
        return self.video or self.audio or ""

    def rejected(self, reason: str, detail: str) -> Reject:
        """This clip as a line of the rejects file, for ``reason`` (a code of :mod:`s2f.prepare.rejects`)."""
        return Reject(
            clip_id=self.clip_id,
            speaker_id=self.speaker_id,
            reason=reason,
            detail=detail,
            source=self.source,
            path=self.media,
            start=self.start,
            end=self.end,
        )


def _suffix(path: str | Path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def _walk(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, skipping hidden folders (``.s2f_prepare``, ``.git``...)."""
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found.extend(Path(folder) / name for name in sorted(files) if not name.startswith("."))
    return found


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise S2FError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise S2FError(f"{where}: {what} {text!r} is not a finite number")
    return value


def _center(x: str, y: str, where: str) -> tuple[float, float]:
    cx, cy = _number(x, "face_x", where), _number(y, "face_y", where)
    if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
        raise S2FError(f"{where}: face center ({cx}, {cy}) must be fractions of the frame in [0, 1]")
    return cx, cy


def _segment_times(start: float, end: float | None, where: str) -> None:
    if start < 0 or (end is not None and end <= start):
        raise S2FError(f"{where}: segment {start}-{end} s is empty or negative; end must be after start >= 0")


def _check_split(value: str | None, where: str) -> str | None:
    if not value:
        return None
    value = value.strip().lower()
    if value not in _SPLIT_VALUES:
        raise S2FError(f"{where}: split {value!r} is not one of {list(_SPLIT_VALUES)}")
    return value


# --------------------------------------------------------------------------------------------- AVSpeech


def _index_videos(folder: Path) -> tuple[dict[str, str], dict[str, list[tuple[float, float, str]]]]:
    """Full videos by YouTube id, and pre-cut segments ``ID_START_END.ext`` by id."""
    full: dict[str, str] = {}
    segments: dict[str, list[tuple[float, float, str]]] = {}
    for path in _walk(folder):
        if _suffix(path) not in VIDEO_EXTENSIONS:
            continue
        stem = path.stem
        full.setdefault(stem, str(path))
        parts = stem.rsplit("_", 2)
        if len(parts) == 3:
            try:
                start, end = float(parts[1]), float(parts[2])
            except ValueError:
                continue
            segments.setdefault(parts[0], []).append((start, end, str(path)))
    return full, segments


def read_avspeech(
    csv_path: str | os.PathLike[str], videos: str | os.PathLike[str], *, split: str | None = None
) -> list[ClipTask]:
    """Clips of an AVSpeech CSV (``youtube_id, start_sec, end_sec, face_x, face_y``, no header needed).

    Videos are looked up in ``videos`` (searched recursively) as ``YOUTUBE_ID.EXT`` (the whole video,
    as ``yt-dlp -o "%(id)s.%(ext)s"`` names it; s2f seeks to the segment) or as a pre-cut segment
    ``YOUTUBE_ID_START_END.EXT`` whose times match the row's within a millisecond.

    AVSpeech has no speaker labels: the YouTube id stands in for the speaker, so all segments of
    one video land in the same split.

    Args:
        csv_path: ``avspeech_train.csv`` or ``avspeech_test.csv`` (or any subset of their rows).
        videos: Folder of downloaded videos.
        split: Put every clip in this split (``"test"`` for ``avspeech_test.csv``); default: by hash.

    Raises:
        S2FError: One line naming the CSV line, when a row does not parse.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise S2FError(f"{path}: AVSpeech CSV does not exist; give avspeech_train.csv or avspeech_test.csv")
    folder = Path(videos)
    if not folder.is_dir():
        raise S2FError(f"{folder}: videos folder does not exist; download the videos first (see the README)")
    split = _check_split(split, "--split")
    full, segments = _index_videos(folder)
    tasks = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            where = f"{path}:{line}"
            if len(row) < 5:
                raise S2FError(f"{where}: expected youtube_id,start_sec,end_sec,face_x,face_y, got {len(row)} fields")
            youtube_id = row[0].strip()
            if line == 1:
                try:
                    float(row[1])
                except ValueError:
                    continue  # a header row
            start = _number(row[1], "start_sec", where)
            end = _number(row[2], "end_sec", where)
            _segment_times(start, end, where)
            task = ClipTask(
                clip_id=f"{youtube_id}_{start:.3f}_{end:.3f}",
                speaker_id=youtube_id,
                start=start,
                end=end,
                center=_center(row[3], row[4], where),
                split=split,
                source=youtube_id,
                where=where,
            )
            segment = next(
                (p for s, e, p in segments.get(youtube_id, ()) if abs(s - start) < 1e-3 and abs(e - end) < 1e-3),
                None,
            )
            if segment is not None:
                task.video, task.offset = segment, start
            elif youtube_id in full:
                task.video = full[youtube_id]
            else:
                task.problem = (VIDEO_MISSING, f"no video {youtube_id}.* or {youtube_id}_START_END.* under {folder}")
            tasks.append(task)
    return tasks


# --------------------------------------------------------------------------------------------- trees


def _pair_media(files: Iterable[Path], root: Path, speaker_of: Any) -> list[ClipTask]:
    """Groups files by folder and stem: a video is a clip; an audio file pairs with a same-stem image."""
    groups: dict[Path, dict[str, Path]] = {}
    for path in files:
        kind = _suffix(path)
        if kind in VIDEO_EXTENSIONS:
            groups.setdefault(path.with_suffix(""), {}).setdefault("video", path)
        elif kind in AUDIO_EXTENSIONS:
            groups.setdefault(path.with_suffix(""), {}).setdefault("audio", path)
        elif kind in IMAGE_EXTENSIONS:
            groups.setdefault(path.with_suffix(""), {}).setdefault("image", path)
    tasks = []
    for stem, found in sorted(groups.items()):
        if "video" not in found and "audio" not in found:
            continue  # an image on its own is not a clip
        relative = stem.relative_to(root)
        media = found.get("video") or found["audio"]
        task = ClipTask(
            clip_id=relative.as_posix(),
            speaker_id=speaker_of(relative),
            source=media.relative_to(root).as_posix(),
            where=str(media),
        )
        if "video" in found:
            task.video = str(found["video"])
        else:
            task.audio = str(found["audio"])
            if "image" in found:
                task.image = str(found["image"])
            else:
                detail = f"{media.name} has no picture: no video and no {stem.name}.jpg/.png beside it"
                task.problem = (NO_VIDEO, detail)
        tasks.append(task)
    return tasks


def scan_folder(root: str | os.PathLike[str]) -> list[ClipTask]:
    """Every video, and every audio file with a same-stem face image, under ``root``.

    The speaker is the first folder under ``root`` (``root/SPEAKER/.../clip.mp4``), or the file's
    stem for files directly in ``root``. The clip id is the path relative to ``root`` without its
    extension.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise S2FError(f"{folder}: folder does not exist; give a folder of videos or audio + image pairs")
    return _pair_media(_walk(folder), folder, lambda rel: rel.parts[0] if len(rel.parts) > 1 else rel.name)


def _read_voxceleb_meta(path: Path) -> dict[str, dict[str, Any]]:
    """``vox1_meta.csv`` (tab-separated) or ``vox2_meta.csv`` (comma-separated) -> labels by speaker id."""
    if not path.is_file():
        raise S2FError(f"{path}: VoxCeleb metadata CSV does not exist; give vox1_meta.csv or vox2_meta.csv")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        text = handle.read()
    delimiter = "\t" if text.split("\n", 1)[0].count("\t") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if not rows:
        raise S2FError(f"{path}: empty metadata CSV")
    header = [name.strip().lower().replace(" ", "_") for name in rows[0]]
    id_column = next((i for i, name in enumerate(header) if name.startswith("voxceleb") and name.endswith("id")), 0)
    labels: dict[str, dict[str, Any]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise S2FError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
        speaker = row[id_column].strip()
        record: dict[str, Any] = {}
        for name, value in values.items():
            if not value or name == header[id_column]:
                continue
            if name == "gender":
                value = {"m": "male", "f": "female"}.get(value.lower(), value)
            record[name] = value
        labels[speaker] = record
    return labels


def scan_voxceleb(root: str | os.PathLike[str], meta: str | os.PathLike[str] | None = None) -> list[ClipTask]:
    """A VoxCeleb-style tree ``root/SPEAKER_ID/VIDEO_ID/CLIP.{mp4,wav,m4a}``, with optional metadata.

    A clip is a video (VoxCeleb2's mp4), or an audio file with a same-stem face image beside it
    (VoxCeleb1's wav comes without pictures: one without an image is rejected as ``no_video``).

    Args:
        root: The folder holding the speaker folders (``wav/``, ``dev/mp4/`` ...).
        meta: ``vox1_meta.csv`` / ``vox2_meta.csv``: its gender (stored as ``male``/``female``),
            nationality and other columns become each clip's metadata. Its ``Set`` column keeps
            VoxCeleb's split: ``test`` speakers go to the test split, ``dev`` ones to train or val.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise S2FError(f"{folder}: VoxCeleb folder does not exist; give the folder holding the id*/ folders")
    labels = _read_voxceleb_meta(Path(meta)) if meta is not None else {}
    files = [path for path in _walk(folder) if len(path.relative_to(folder).parts) >= 3]
    tasks = _pair_media(files, folder, lambda rel: rel.parts[0])
    for task in tasks:
        info = dict(labels.get(task.speaker_id, {}))
        official = str(info.pop("set", "")).lower()
        task.split = {"test": "test", "dev": SPLIT_DEV}.get(official)
        task.metadata = info
    return tasks


# --------------------------------------------------------------------------------------------- manifest

_MANIFEST_KNOWN = ("speaker_id", "video", "audio", "face", "clip_id", "split", "start", "end", "face_x", "face_y")


def read_manifest_csv(path: str | os.PathLike[str]) -> list[ClipTask]:
    """A CSV listing clips: ``speaker_id`` and ``video`` (or ``audio`` + ``face``), paths relative to the CSV.

    Optional columns: ``clip_id``, ``split``, ``start``, ``end`` (seconds), ``face_x``, ``face_y``
    (the speaker's face center as fractions); any other column becomes metadata. The default clip
    id is the media path without its extension, plus ``_START_END`` when times are given.

    Raises:
        S2FError: One line naming the CSV line, when a row lacks a required value or does not parse.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise S2FError(f"{csv_path}: manifest does not exist; give a CSV with speaker_id and video (or audio,face)")
    base = csv_path.parent
    tasks = []
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        if "speaker_id" not in columns or not ({"video", "audio"} & set(columns)):
            raise S2FError(
                f"{csv_path}: the header must name speaker_id and video (or audio and face); it has {columns}"
            )
        for line, raw in enumerate(reader, start=2):
            row = {(key or "").strip(): (value or "").strip() for key, value in raw.items() if key is not None}
            where = f"{csv_path}:{line}"
            media = row.get("video") or row.get("audio")
            if not row.get("speaker_id") or not media:
                raise S2FError(f"{where}: every row needs speaker_id and a video (or audio) path")
            start = _number(row["start"], "start", where) if row.get("start") else 0.0
            end = _number(row["end"], "end", where) if row.get("end") else None
            _segment_times(start, end, where)
            default_id = Path(media).with_suffix("").as_posix()
            if row.get("start") or row.get("end"):
                default_id += f"_{start:.3f}_{end if end is not None else -1:.3f}"
            task = ClipTask(
                clip_id=row.get("clip_id") or default_id,
                speaker_id=row["speaker_id"],
                start=start,
                end=end,
                center=_center(row["face_x"], row["face_y"], where) if row.get("face_x") or row.get("face_y") else None,
                split=_check_split(row.get("split"), where),
                metadata={k: v for k, v in row.items() if k not in _MANIFEST_KNOWN and k and v},
                source=media,
                where=where,
            )
            resolved = Path(media).expanduser()
            resolved = resolved if resolved.is_absolute() else base / resolved
            if row.get("video"):
                task.video = str(resolved)
            else:
                task.audio = str(resolved)
                if row.get("face"):
                    face = Path(row["face"]).expanduser()
                    task.image = str(face if face.is_absolute() else base / face)
                else:
                    task.problem = (NO_VIDEO, f"{where}: an audio row needs a face image in the face column")
            missing = [p for p in (task.video, task.audio, task.image) if p and not os.path.isfile(p)]
            if missing and task.problem is None:
                task.problem = (VIDEO_MISSING, f"{', '.join(missing)} not found")
            tasks.append(task)
    return tasks

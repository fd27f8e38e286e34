"""Why a clip was skipped: the reason codes of ``s2f prepare`` and its rejects file.

Every input clip ends up either as a shard row or as one line of ``ROOT/rejects.jsonl``, a JSON
object per skipped clip::

    {"clip_id": "abc_12.000_17.500", "speaker_id": "abc", "source": "abc", "path": "videos/abc.mp4",
     "start": 12.0, "end": 17.5, "reason": "no_face", "detail": "MTCNN found no face in the frame at 12.00 s"}

``reason`` is one of :data:`REASONS`; ``detail`` is a human-readable line.

Example:
    >>> reject = Reject("c1", "spk", reason=TOO_SHORT, detail="1.00 s of audio, need at least 3.00 s")
    >>> Reject.from_json(reject.to_json()) == reject
    True
    >>> describe(TOO_SHORT)
    'less audio than --min-seconds'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from s2f._atomic import atomic_open

__all__ = [
    "FACE_NOT_AT_CENTER",
    "FACE_TOO_SMALL",
    "FAILED",
    "NO_AUDIO",
    "NO_FACE",
    "NO_VIDEO",
    "REASONS",
    "SILENT",
    "TOO_SHORT",
    "UNDECODABLE",
    "VIDEO_MISSING",
    "Reject",
    "describe",
    "read_rejects",
    "write_rejects",
]

VIDEO_MISSING = "video_missing"
UNDECODABLE = "undecodable"
NO_AUDIO = "no_audio"
NO_VIDEO = "no_video"
TOO_SHORT = "too_short"
SILENT = "silent"
NO_FACE = "no_face"
FACE_NOT_AT_CENTER = "face_not_at_center"
# Reason codes that s2f 0.1 wrote with British spelling, read as today's.
RENAMED_REASONS = {"face_not_at_centre": FACE_NOT_AT_CENTER}
FACE_TOO_SMALL = "face_too_small"
FAILED = "failed"

# In pipeline order; the summary table lists reasons in this order.
REASONS: dict[str, str] = {
    VIDEO_MISSING: "media file not found (not downloaded, or the path is wrong)",
    UNDECODABLE: "the file cannot be opened or decoded (truncated, corrupt, not media)",
    NO_AUDIO: "the file has no audio stream",
    NO_VIDEO: "no picture: the file has no video stream and no face image beside it",
    TOO_SHORT: "less audio than --min-seconds",
    SILENT: "the audio is silent (RMS below --silence-dbfs)",
    NO_FACE: "no face detected",
    FACE_NOT_AT_CENTER: "faces found, but none at the given face center",
    FACE_TOO_SMALL: "the speaker's face is smaller than --min-face pixels",
    FAILED: "an unexpected error while processing the clip (see detail; please report it)",
}


def describe(reason: str) -> str:
    """One-line meaning of a reason code."""
    return REASONS.get(reason, "unknown reason")


@dataclass(frozen=True)
class Reject:
    """One skipped clip.

    Attributes:
        clip_id: The clip's id (as it would have been in the shards).
        speaker_id: The clip's speaker.
        reason: One of :data:`REASONS`.
        detail: What exactly went wrong, in one line.
        source: Provenance label (video id or relative path), as a row's ``source_video`` would be.
        path: The media file that was (or would have been) read.
        start: Segment start in the source, seconds.
        end: Segment end in the source, seconds (``None`` when open-ended).
    """

    clip_id: str
    speaker_id: str
    reason: str
    detail: str = ""
    source: str = ""
    path: str = ""
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}; expected one of {list(REASONS)}")

    def to_json(self) -> str:
        """The record as one JSON line (no newline)."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_json(cls, line: str | dict[str, Any]) -> Reject:
        """Parses a line written by :meth:`to_json` (or its decoded dict)."""
        data = json.loads(line) if isinstance(line, str) else dict(line)
        if data.get("reason") in RENAMED_REASONS:
            data["reason"] = RENAMED_REASONS[data["reason"]]
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def write_rejects(path: str | os.PathLike[str], rejects: Iterable[Reject]) -> int:
    """Writes ``rejects`` as JSON lines, atomically (a reader never sees half a file); returns the count."""
    count = 0
    with atomic_open(path) as handle:
        for reject in rejects:
            handle.write(reject.to_json() + "\n")
            count += 1
    return count


def read_rejects(path: str | os.PathLike[str]) -> list[Reject]:
    """Reads a rejects file; an absent file holds no rejects."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [Reject.from_json(line) for line in handle if line.strip()]

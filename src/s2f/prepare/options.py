"""The settings of :func:`~s2f.prepare.prepare`, in four groups: what is decoded, how the face is found,
how the shards are laid out, and what computes them.

Each group is a frozen dataclass whose fields are the keywords ``prepare`` has always taken, so
``prepare(tasks, out, teacher, max_seconds=3.0)`` and ``prepare(tasks, out, teacher,
decode=DecodeOptions(max_seconds=3.0))`` are the same call. ``s2f prepare`` builds its options from
these fields, so a field added here is a command-line option without further code.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from s2f.shards.format import AUDIO_CODECS, DEFAULT_SPLIT_FRACTIONS

__all__ = ["ComputeOptions", "DecodeOptions", "FaceOptions", "PrepareOptions", "ShardOptions"]

# Keywords of s2f 0.1 spelled the British way; they still work, with a DeprecationWarning.
RENAMED_KEYWORDS = {"centre_margin": "center_margin"}


@dataclass(frozen=True)
class DecodeOptions:
    """What is read from each clip.

    Attributes:
        max_seconds: Speech kept per clip (the paper: the first 6 s).
        min_seconds: Clips with less speech are rejected (``too_short``).
        num_frames: Frames searched for the face, the first at the segment start.
        silence_dbfs: Clips quieter than this RMS level are rejected (``silent``).
        detect_size: Frames are searched for faces at this longest side (speed; crops come from the full frame).
    """

    max_seconds: float = 6.0
    min_seconds: float = 3.0
    num_frames: int = 1
    silence_dbfs: float = -60.0
    detect_size: int = 640

    def __post_init__(self) -> None:
        if not (0 < self.min_seconds <= self.max_seconds):
            raise ValueError(f"need 0 < min_seconds <= max_seconds, got {self.min_seconds} and {self.max_seconds}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")


@dataclass(frozen=True)
class FaceOptions:
    """How the speaker's face is chosen and aligned.

    Attributes:
        min_face_size: Faces whose box is narrower, in frame pixels, are rejected (``face_too_small``).
        center_margin: How far from a face's box the given face center may lie (see
            :func:`s2f.vision.detection.choose_face`).
        min_confidence: MTCNN detections below this confidence are ignored.
        landmarks: ``"dlib68"``, ``"mtcnn5"`` or ``"auto"`` (dlib68 when dlib is installed); see
            :class:`s2f.vision.detection.FaceAligner`. Recorded as the manifest's ``landmarks``.
    """

    min_face_size: float = 64.0
    center_margin: float = 0.5
    min_confidence: float = 0.9
    landmarks: Literal["auto", "dlib68", "mtcnn5"] = "auto"


@dataclass(frozen=True)
class ShardOptions:
    """How the shard root is laid out.

    Attributes:
        split_fractions: Train, val and test shares for speakers without an explicit split.
        audio_codec: ``"flac"`` or ``"pcm16"``.
        part_size: Clips per committed part: the most a hard kill can make a rank redo.
        chunk_bytes: Target size of a chunk file.
    """

    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS
    audio_codec: str = "flac"
    part_size: int = 256
    chunk_bytes: int | str = "64MB"

    def __post_init__(self) -> None:
        if self.audio_codec not in AUDIO_CODECS:
            raise ValueError(f"audio_codec must be one of {AUDIO_CODECS}, got {self.audio_codec!r}")
        if self.part_size < 1:
            raise ValueError(f"part_size must be at least 1, got {self.part_size}")


@dataclass(frozen=True)
class ComputeOptions:
    """What runs the work, as a Lightning ``predict``.

    Attributes:
        batch_size: Clips per predict step and teacher call.
        num_workers: DataLoader workers per rank, decoding media and, with ``detect_in_workers``, finding the
            faces (default: when they find the faces, the node's cores per device; otherwise the cores per
            device less one, at most 8).
        detect_in_workers: Find the faces (MTCNN, choice, alignment) in the DataLoader workers, each over
            the batch it decoded, rather than in the main process. By default (None) on when the
            accelerator is the CPU and there are workers, so that every core detects; off on a GPU,
            where detection on the device is faster.
        accelerator: Lightning accelerator (``"cpu"``, ``"gpu"``, ``"auto"``).
        devices: Lightning devices per node.
        num_nodes: Lightning nodes.
        strategy: Lightning strategy (``"ddp"`` for several devices).
        progress: Show a progress bar.
    """

    batch_size: int = 16
    num_workers: int | None = None
    detect_in_workers: bool | None = None
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class PrepareOptions:
    """All four groups, as :func:`~s2f.prepare.prepare` uses them."""

    decode: DecodeOptions = DecodeOptions()
    face: FaceOptions = FaceOptions()
    shards: ShardOptions = ShardOptions()
    compute: ComputeOptions = ComputeOptions()

    @classmethod
    def from_keywords(cls, groups: Mapping[str, Any], keywords: Mapping[str, Any]) -> PrepareOptions:
        """The groups given (the defaults for those that are None), with single ``keywords`` set on them.

        Example:
            >>> PrepareOptions.from_keywords({"decode": DecodeOptions(num_frames=2)}, {"max_seconds": 3.0}).decode
            DecodeOptions(max_seconds=3.0, min_seconds=3.0, num_frames=2, silence_dbfs=-60.0, detect_size=640)

        Raises:
            TypeError: A keyword that no group has, as Python reports an unexpected keyword argument.
        """
        keywords = _current_spelling(keywords)
        kinds: dict[str, Any] = {field.name: type(field.default) for field in dataclasses.fields(cls)}
        owner = {field.name: name for name, kind in kinds.items() for field in dataclasses.fields(kind)}
        unknown = sorted(set(keywords) - set(owner))
        if unknown:
            raise TypeError(f"prepare() got an unexpected keyword argument {unknown[0]!r}")
        resolved: dict[str, Any] = {}
        for name, kind in kinds.items():
            options = groups.get(name) or kind()
            if not isinstance(options, kind):
                raise TypeError(f"prepare(): {name}= takes a {kind.__name__}, got {type(options).__name__}")
            changes = {key: value for key, value in keywords.items() if owner[key] == name}
            resolved[name] = dataclasses.replace(options, **changes) if changes else options
        return cls(**resolved)


def _current_spelling(keywords: Mapping[str, Any]) -> dict[str, Any]:
    renamed = dict(keywords)
    for old, new in RENAMED_KEYWORDS.items():
        if old in renamed:
            warnings.warn(f"prepare(): {old}= is deprecated; use {new}=", DeprecationWarning, stacklevel=4)
            if new in renamed:
                raise TypeError(f"prepare() got both {old}= and {new}=; give {new}= only")
            renamed[new] = renamed.pop(old)
    return renamed

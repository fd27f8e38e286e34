"""What the evaluation reads: one split of a shard root, and the model's embeddings of its voices."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, ShardFormatError

__all__ = ["HeldOut", "decode_faces", "load_held_out", "predict_embeddings", "read_labelled_embeddings"]


@dataclass
class HeldOut:
    """The clips of the evaluated split, sorted by clip id.

    Attributes:
        clip_ids: Id of each clip.
        speaker_ids: Speaker of each clip.
        audio: Samples of each clip (int16, 16 kHz).
        faces: The face crops, uint8 [N, H, W, 3].
        embeddings: The teacher's embeddings of the faces [N, D].
        metadata: Each clip's labels.
        teacher: Name of the teacher that embedded the faces.
    """

    clip_ids: list[str]
    speaker_ids: list[str]
    audio: list[np.ndarray]
    faces: np.ndarray
    embeddings: torch.Tensor
    metadata: list[dict[str, Any]] = field(default_factory=list)
    teacher: str = ""

    def __len__(self) -> int:
        return len(self.clip_ids)


def load_held_out(
    data_dir: str | os.PathLike[str], split: str, *, max_clips: int | None = None, seed: int = 0
) -> HeldOut:
    """Reads one split; with ``max_clips``, a seeded random subset of that many clips.

    Raises:
        ShardFormatError: When the split is missing or empty (the message names the root).
    """
    from ..shards import iter_records, read_manifest

    manifest = read_manifest(data_dir)
    if split not in manifest.splits:
        present = ", ".join(manifest.splits) or "none"
        raise ShardFormatError(f"{data_dir} has no {split!r} split (splits on disk: {present}); pass --split with one")
    records = sorted(iter_records(data_dir, split), key=lambda r: r.clip_id)
    if not records:
        raise ShardFormatError(f"{data_dir}: split {split!r} holds no clips; pass --split with one that does")
    if max_clips is not None and max_clips < len(records):
        if max_clips < 2:
            raise ConfigError(f"max_clips must be at least 2, got {max_clips}")
        keep = np.sort(np.random.default_rng(seed).choice(len(records), size=max_clips, replace=False))
        records = [records[i] for i in keep]
    return HeldOut(
        clip_ids=[r.clip_id for r in records],
        speaker_ids=[r.speaker_id for r in records],
        audio=[r.audio for r in records],
        faces=np.stack([r.face for r in records]),
        embeddings=torch.from_numpy(np.stack([r.embedding for r in records]).astype(np.float32)),
        metadata=[dict(r.metadata) for r in records],
        teacher=manifest.teacher,
    )


@torch.inference_mode()
def predict_embeddings(
    model: Any,
    audio: Sequence[np.ndarray],
    seconds: float,
    *,
    batch_size: int = 32,
    progress: bool = False,
    settings: Any = None,
    precision: str | None = None,
) -> torch.Tensor:
    """The model's embedding [N, D] of each clip, cropped or loop-repeated to ``seconds``, in batches, through
    its fast inference path (:meth:`~s2f.model.speech2face.Speech2Face.embed`) with ``settings`` (an
    :class:`~s2f.model.inference.InferenceSettings`; None: the model's own). ``precision=`` is the old
    per-call inference precision (a DeprecationWarning)."""
    from tqdm.auto import tqdm

    from ..audio import Waveform, load_clip

    model.eval()
    batches = []
    starts = range(0, len(audio), batch_size)
    for start in tqdm(starts, desc=f"voices at {seconds:g} s", disable=not progress, unit="batch"):
        chunk = audio[start : start + batch_size]
        waves = torch.stack([load_clip(Waveform(samples, 16_000), seconds, model.sample_rate) for samples in chunk])
        batches.append(model.embed(waves, settings=settings, precision=precision).float().cpu())
    return torch.cat(batches)


@torch.inference_mode()
def decode_faces(
    draw: Callable[[torch.Tensor], Any], embeddings: torch.Tensor, device: torch.device, *, batch_size: int = 32
) -> np.ndarray:
    """The face ``draw`` (a decoder, or a model's :meth:`~s2f.model.speech2face.Speech2Face.draw`) makes of each
    embedding, as RGB uint8 [N, S, S, 3]."""
    images = []
    for start in range(0, len(embeddings), batch_size):
        image = draw(embeddings[start : start + batch_size].to(device)).image.float().clamp(0, 1)
        images.append((image * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(images)


def read_labelled_embeddings(
    data_dir: str | os.PathLike[str], split: str, *, max_clips: int = 20_000
) -> tuple[torch.Tensor, list[str], list[dict[str, Any]]]:
    """The teacher embeddings, speakers and metadata of up to ``max_clips`` clips of one split, spread evenly.

    Reads the stored rows without decoding audio or faces (50 ms instead of seconds for a thousand clips).

    Raises:
        ShardFormatError: When the split is missing.
    """
    from ..shards import read_embeddings

    return read_embeddings(data_dir, split, max_clips=max_clips)

"""The scale-out machinery of ``s2f prepare``: a Lightning ``predict`` over planned parts.

* :class:`DecodeDataset` decodes clips in DataLoader worker processes (PyAV, seeking) and shrinks
  frames for detection there, so the devices never wait on FFmpeg.
* :class:`FacePipeline` is the LightningModule: per batch it detects faces (MTCNN, batched by frame
  size), picks and aligns the speaker's face, and embeds every accepted crop in one teacher call,
  on whatever accelerator the Trainer gives it.
* :class:`PartWriter` is the prediction writer: each rank writes its own parts (a ShardWriter root
  each) and commits a part when every clip of it is written or rejected. On SIGTERM or Ctrl-C it
  commits what the current part has so far, so a polite stop loses nothing; a hard kill loses at
  most the parts in flight, which the next run redoes.

Which parts a rank takes is decided here from the global rank and world size (round robin over
parts), not by a distributed sampler, so that every clip belongs to exactly one rank.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from s2f.errors import S2FError
from s2f.shards import FACE_SIZE, SAMPLE_RATE, ClipRecord, ShardWriter
from s2f.shards.format import _FP16_MAX
from s2f.teachers.face_teacher import FaceTeacher
from s2f.vision.detection import Face, FaceAligner, FaceDetector, choose_face, detection_view

from .decode import DecodedClip, MediaError, decode_clip
from .parts import PartRecord, PartStore
from .rejects import FACE_NOT_AT_CENTER, FACE_TOO_SMALL, FAILED, NO_FACE, Reject
from .sources import ClipTask

__all__ = ["DecodeDataset", "FacePipeline", "PartWriter", "PlannedPart", "PrepareInterrupted", "WorkItem"]

# When no frame gives a usable face, report the failure that got furthest.
_FAILURE_RANK = {NO_FACE: 0, FACE_NOT_AT_CENTER: 1, FACE_TOO_SMALL: 2}


class PrepareInterrupted(S2FError):
    """The run was stopped by a signal after committing its work; the same command resumes it."""

    exit_code = 143  # 128 + SIGTERM, what shells report for a terminated job


@dataclass(frozen=True)
class PlannedPart:
    """A part to write: its number and its clips (with their resolved splits)."""

    number: int
    tasks: tuple[ClipTask, ...]


def plan_digest(parts: Sequence[PlannedPart]) -> str:
    """A fingerprint of a plan; every rank must compute the same one."""
    payload = [[part.number, [(t.clip_id, t.split) for t in part.tasks]] for part in parts]
    return hashlib.sha1(json.dumps(payload).encode("utf-8")).hexdigest()


@dataclass
class WorkItem:
    """One clip after the DataLoader worker: decoded media, or the reason it could not be decoded."""

    part: int
    task: ClipTask
    clip: DecodedClip | None = None
    frames: list[torch.Tensor] = field(default_factory=list)  # full frames, uint8 [H, W, 3]
    views: list[torch.Tensor] = field(default_factory=list)  # the frames shrunk for detection
    scales: list[float] = field(default_factory=list)  # view pixel -> frame pixel
    reject: Reject | None = None


class DecodeDataset(Dataset[WorkItem]):
    """The clips of one rank's parts, decoded on access (in DataLoader workers).

    Args:
        parts: This rank's parts, in order.
        max_seconds: Audio kept per clip.
        min_seconds: Shorter clips are rejected.
        num_frames: Frames to look for the face in.
        silence_dbfs: Quieter clips are rejected.
        detect_size: Longest side of the frames handed to the detector.
    """

    def __init__(
        self,
        parts: Sequence[PlannedPart],
        *,
        max_seconds: float,
        min_seconds: float,
        num_frames: int,
        silence_dbfs: float,
        detect_size: int,
    ) -> None:
        self.items = [(part.number, task) for part in parts for task in part.tasks]
        self.options: dict[str, Any] = {
            "max_seconds": max_seconds,
            "min_seconds": min_seconds,
            "num_frames": num_frames,
            "silence_dbfs": silence_dbfs,
        }
        self.detect_size = detect_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> WorkItem:
        part, task = self.items[index]
        try:
            clip = decode_clip(task, **self.options)
            began = time.perf_counter()
            views, scales = [], []
            for frame in clip.frames:
                view, scale = detection_view(frame, self.detect_size)
                views.append(torch.from_numpy(np.ascontiguousarray(view)))
                scales.append(scale)
            # Tensors cross from the worker through shared memory rather than a pipe.
            frames = [torch.from_numpy(np.ascontiguousarray(frame)) for frame in clip.frames]
            clip.frames = []
            clip.seconds += time.perf_counter() - began
            return WorkItem(part, task, clip, frames, views, scales)
        except MediaError as err:
            return WorkItem(part, task, reject=task.rejected(err.reason, err.detail))
        except Exception as err:  # one odd file must not stop a two-million-clip run; it is reported
            return WorkItem(part, task, reject=task.rejected(FAILED, f"{task.media}: {type(err).__name__}: {err}"))


def _storable(embedding: np.ndarray) -> bool:
    """Whether an embedding survives float16 storage as finite numbers."""
    return bool(np.isfinite(embedding).all()) and float(np.abs(embedding).max(initial=0.0)) <= _FP16_MAX


def _collate(items: list[WorkItem]) -> list[WorkItem]:
    return items


@dataclass
class Outcome:
    """A clip's result: a row to write or a reject, with the seconds spent on it per stage."""

    part: int
    record: ClipRecord | None
    reject: Reject | None
    timings: dict[str, float]


class FacePipeline(pl.LightningModule):
    """Detect, choose, align and embed: the device side of ``s2f prepare``.

    Args:
        teacher: The frozen face network (``embed_images(uint8 [B, 3, H, W]) -> [B, D]``).
        parts: The whole plan; each rank takes every ``world_size``-th part from its rank on.
        digest: :func:`plan_digest` of ``parts``, checked to agree across ranks.
        batch_size: Clips per predict step (and per teacher call).
        num_workers: DataLoader worker processes decoding media.
        decode: Keyword arguments of :class:`DecodeDataset`.
        min_face_size: Shortest side, in frame pixels, of a usable face.
        center_margin: See :func:`s2f.vision.detection.choose_face`.
        min_confidence: Detections below this MTCNN confidence are ignored.
        landmarks: Landmark scheme of :class:`~s2f.vision.detection.FaceAligner` (``"dlib68"`` or ``"mtcnn5"``).
    """

    def __init__(
        self,
        teacher: FaceTeacher,
        parts: Sequence[PlannedPart],
        digest: str,
        *,
        batch_size: int,
        num_workers: int,
        decode: dict[str, Any],
        min_face_size: float,
        center_margin: float,
        min_confidence: float,
        landmarks: str,
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.detector = FaceDetector(min_confidence=min_confidence)
        self.aligner = FaceAligner(landmarks, FACE_SIZE)
        self.parts = list(parts)
        self.digest = digest
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.decode_options = decode
        self.min_face_size = min_face_size
        self.center_margin = center_margin
        self._threads = torch.get_num_threads()
        # With fewer parts than ranks, some ranks have nothing to do; that is fine here.
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def my_parts(self) -> list[PlannedPart]:
        """The parts of this rank."""
        rank, world = self.trainer.global_rank, self.trainer.world_size
        return self.parts[rank::world]

    def setup(self, stage: str) -> None:
        # Every rank planned on its own from the same files; a difference would break exactly-once.
        if self.trainer.world_size > 1:
            reference = self.trainer.strategy.broadcast(self.digest, src=0)
            if reference != self.digest:
                raise S2FError(
                    f"rank {self.trainer.global_rank} planned different work than rank 0; the input or the "
                    "output folder changed while the ranks started, so run the command again"
                )

    def on_predict_start(self) -> None:
        # On a CPU, the decoding workers need cores too. OpenMP threads that compete with them for a
        # core spin instead of sleeping: MTCNN's many small convolutions ran 20x slower with 2 threads
        # than with 1 on a busy 2-core machine. Give the detector only the cores the workers leave.
        self._threads = torch.get_num_threads()
        if self.device.type == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            torch.set_num_threads(
                max(1, min(self._threads, cores // max(1, self.trainer.num_devices) - self.num_workers))
            )

    def on_predict_end(self) -> None:
        torch.set_num_threads(self._threads)

    def predict_dataloader(self) -> DataLoader[WorkItem]:
        dataset = DecodeDataset(self.my_parts(), **self.decode_options)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate,
            persistent_workers=False,
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Frames go to the detector as arrays and crops to the teacher as one batch; moving every
        # decoded frame to the device here would only copy pixels the detector shrinks anyway.
        return batch

    def _choose(
        self, item: WorkItem, frame_faces: list[list[Face]]
    ) -> tuple[tuple[Face, torch.Tensor, float] | None, tuple[str, str]]:
        """The best usable face over the item's frames, or the failure that got furthest."""
        assert item.clip is not None
        best: tuple[Face, torch.Tensor, float] | None = None
        failure = (NO_FACE, "no face detected")
        for frame, frame_time, scale, faces in zip(
            item.frames, item.clip.frame_times, item.scales, frame_faces, strict=True
        ):
            height, width = frame.shape[:2]
            choice = choose_face(
                [face.scaled(scale) for face in faces],
                (width, height),
                item.task.center,
                min_face_size=self.min_face_size,
                center_margin=self.center_margin,
            )
            if choice.face is not None:
                if best is None or choice.face.score > best[0].score:
                    best = (choice.face, frame, frame_time)
            elif _FAILURE_RANK.get(choice.reason or "", -1) >= _FAILURE_RANK.get(failure[0], -1):
                failure = (choice.reason or NO_FACE, f"frame at {frame_time:.2f} s: {choice.detail}")
        return best, failure

    def predict_step(self, batch: list[WorkItem], batch_idx: int = 0) -> list[Outcome]:
        began = time.perf_counter()
        views: list[np.ndarray] = []
        sizes: list[float] = []
        for item in batch:
            if item.clip is not None:
                views.extend(view.numpy() for view in item.views)
                # Look for faces down to half the usable size, so that smaller ones are reported as
                # too small rather than missing, and no further: smaller searches cost far more.
                sizes.extend(self.min_face_size / 2 / scale for scale in item.scales)
        detections = iter(self.detector.detect(views, sizes)) if views else iter(())
        detect_share = (time.perf_counter() - began) / max(1, len(batch))

        accepted: list[tuple[WorkItem, np.ndarray, np.ndarray, float]] = []  # item, crop, landmarks, frame time
        outcomes: dict[int, Outcome] = {}
        for position, item in enumerate(batch):
            timings = {"decode": item.clip.seconds if item.clip else 0.0, "detect": detect_share}
            if item.reject is not None or item.clip is None:
                outcomes[position] = Outcome(item.part, None, item.reject, timings)
                continue
            frame_faces = [next(detections) for _ in item.frames]  # consumed first: keeps later items in step
            began = time.perf_counter()
            try:
                best, failure = self._choose(item, frame_faces)
                if best is None:
                    outcomes[position] = Outcome(item.part, None, item.task.rejected(*failure), timings)
                    continue
                face, frame, frame_time = best
                aligned = self.aligner.align(frame.numpy(), face)
            except Exception as err:  # one odd frame must not stop the run; it is reported
                detail = f"{item.task.media}: {type(err).__name__}: {err}"
                outcomes[position] = Outcome(item.part, None, item.task.rejected(FAILED, detail), timings)
                continue
            accepted.append((item, aligned.image, aligned.landmarks, frame_time))
            timings["detect"] += time.perf_counter() - began
            outcomes[position] = Outcome(item.part, None, None, timings)

        if accepted:
            began = time.perf_counter()
            crops = torch.from_numpy(np.stack([crop for _, crop, _, _ in accepted])).permute(0, 3, 1, 2)
            embeddings = self.teacher.embed_images(crops.to(self.device)).float().cpu().numpy()
            expected = (len(accepted), int(self.teacher.embed_dim))
            if embeddings.shape != expected:
                raise S2FError(f"teacher {self.teacher.name!r} returned embeddings {embeddings.shape}, not {expected}")
            embed_share = (time.perf_counter() - began) / len(accepted)
            by_item = {id(item): index for index, (item, _, _, _) in enumerate(accepted)}
            for position, item in enumerate(batch):
                index = by_item.get(id(item))
                if index is None:
                    continue
                _, crop, landmarks, frame_time = accepted[index]
                assert item.clip is not None
                task, clip = item.task, item.clip
                outcome = outcomes[position]
                outcome.timings["embed"] = embed_share
                if not _storable(embeddings[index]):  # a NaN row would stop the writer, and the whole run
                    detail = f"{task.media}: the teacher's embedding holds NaN/inf or exceeds float16 (|x| > 65504)"
                    outcome.reject = task.rejected(FAILED, detail)
                    continue
                outcome.record = ClipRecord(
                    clip_id=task.clip_id,
                    speaker_id=task.speaker_id,
                    audio=clip.audio,
                    face=crop,
                    embedding=embeddings[index],
                    landmarks=landmarks,
                    split=task.split,
                    source_video=task.source,
                    source_start=clip.audio_start,
                    source_end=clip.audio_start + clip.audio.shape[0] / SAMPLE_RATE,
                    frame_time=frame_time,
                    metadata=dict(task.metadata),
                )
        return [outcomes[position] for position in range(len(batch))]


class PartWriter(BasePredictionWriter):
    """Writes each rank's outcomes into its parts and commits them; see the module docstring.

    Args:
        store: The root's part store.
        writer_options: Keyword arguments of each part's :class:`ShardWriter`.
        sizes: Clips in each planned part, by part number (set before the run starts).
    """

    def __init__(self, store: PartStore, writer_options: dict[str, Any], sizes: dict[int, int] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.store = store
        self.sizes = dict(sizes or {})
        self.writer_options = writer_options
        self.rank = 0
        self._current: PartRecord | None = None
        self._writer: ShardWriter | None = None
        self.committed: list[int] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.rank = trainer.global_rank

    def _open(self, number: int) -> None:
        folder = self.store.begin_part(number)
        self._writer = ShardWriter(folder, overwrite=True, **self.writer_options)
        self._current = PartRecord(number=number, rank=self.rank)

    def _commit(self) -> None:
        record, writer = self._current, self._writer
        if record is None or writer is None:
            return
        began = time.perf_counter()
        writer.close()
        record.timings["write"] = record.timings.get("write", 0.0) + time.perf_counter() - began
        self.store.commit_part(record)
        self.committed.append(record.number)
        self._current, self._writer = None, None

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for outcome in prediction:
            if self._current is None or outcome.part != self._current.number:
                if self._current is not None:
                    raise RuntimeError(f"part {self._current.number} ended before all its clips were seen")
                self._open(outcome.part)
            record, writer = self._current, self._writer
            assert record is not None and writer is not None
            for stage, seconds in outcome.timings.items():
                record.timings[stage] = record.timings.get(stage, 0.0) + seconds
            if outcome.record is not None:
                began = time.perf_counter()
                split = writer.write(outcome.record)
                record.timings["write"] = record.timings.get("write", 0.0) + time.perf_counter() - began
                record.written[outcome.record.clip_id] = split
                record.speakers[outcome.record.speaker_id] = split
            elif outcome.reject is not None:
                record.rejects.append(outcome.reject)
            if len(record.written) + len(record.rejects) == self.sizes[record.number]:
                self._commit()

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
        # Lightning turns SIGTERM into a flag that its predict loop never reads; stop here instead.
        if getattr(trainer, "received_sigterm", False):
            self._commit()
            raise PrepareInterrupted(
                f"stopped by SIGTERM after committing parts {self.committed or 'none'} on rank {self.rank}; "
                "run the same command again to finish"
            )

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Ctrl-C: every row written so far is complete, so keep them. Any other error may have left the
        # writer mid-row; its part stays uncommitted and is redone by the next run.
        if isinstance(exception, KeyboardInterrupt):
            self._commit()

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not called on a rank that got no batches; the barrier before assembly is in prepare.
        if self._current is not None:
            raise RuntimeError(f"part {self._current.number} is incomplete at the end of the run")

"""The scale-out machinery of ``s2f prepare``: a Lightning ``predict`` over planned parts.

* :class:`DecodeDataset` decodes clips in DataLoader worker processes (PyAV, seeking) and shrinks
  frames for detection there, so the devices never wait on FFmpeg.
* :class:`FacePipeline` is the LightningModule: per batch it embeds every accepted crop in one
  teacher call, on whatever accelerator the Trainer gives it.
* Where the speaker's face is found (:class:`~s2f.prepare.faces.SpeakerFaceFinder`: MTCNN over all
  the frames of a batch, then each clip's choice and alignment) depends on the accelerator. On a GPU
  the main process finds it, on the device, and the workers only decode. On a CPU each worker finds
  the faces of the batch it decoded and sends back only the aligned crops: detection is most of a CPU
  run's work, and in the main process it ran on one core while the decoding workers waited
  (``ComputeOptions.detect_in_workers``). On the 2-core demo world (900 clips, 1 frame each, teacher
  dlib_resnet, cores shared with other jobs, 1-min load 1.5-2.0 at start) a run took 183 s with
  detection in the main process and one worker, 115 s with it in two workers; four 300-clip runs,
  taken in turn, 82 and 89 s against 49 and 54 s. The shards were bit-identical (same MTCNN batches).
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
from s2f.vision.detection import FaceAligner, FaceDetector, detection_view

from .decode import DecodedClip, MediaError, decode_clip
from .faces import ClipFrames, FoundFace, SpeakerFaceFinder
from .parts import PartRecord, PartStore
from .rejects import FAILED, Reject
from .sources import ClipTask
from .worker_processes import worker_context

__all__ = ["DecodeDataset", "FacePipeline", "PartWriter", "PlannedPart", "PrepareInterrupted", "WorkItem"]


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
    """One clip after the DataLoader worker: its face found, its frames to search, or its reject.

    A worker that finds the faces itself sends ``face`` and no frames; otherwise ``frames``, ``views``
    and ``scales`` go to the main process's detection, which replaces them with ``face`` or
    ``reject``. ``clip`` (audio, times) is kept for every clip that may become a row.
    """

    part: int
    task: ClipTask
    clip: DecodedClip | None = None
    frames: list[torch.Tensor] = field(default_factory=list)  # full frames, uint8 [H, W, 3]
    views: list[torch.Tensor] = field(default_factory=list)  # the frames shrunk for detection
    scales: list[float] = field(default_factory=list)  # view pixel -> frame pixel
    face: FoundFace | None = None
    reject: Reject | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent on this clip, by stage

    @property
    def awaits_detection(self) -> bool:
        """Decoded, and neither found nor rejected yet: the main process detects in it."""
        return self.clip is not None and self.face is None and self.reject is None


class DecodeDataset(Dataset[WorkItem]):
    """The clips of one rank's parts, decoded on access (in DataLoader workers).

    Args:
        parts: This rank's parts, in order.
        max_seconds: Audio kept per clip.
        min_seconds: Shorter clips are rejected.
        num_frames: Frames to look for the face in.
        silence_dbfs: Quieter clips are rejected.
        detect_size: Longest side of the frames handed to the detector.
        faces: Finds the speakers' faces of each batch here, in the worker; None leaves that to the main process.
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
        faces: SpeakerFaceFinder | None = None,
    ) -> None:
        self.items = [(part.number, task) for part in parts for task in part.tasks]
        self.options: dict[str, Any] = {
            "max_seconds": max_seconds,
            "min_seconds": min_seconds,
            "num_frames": num_frames,
            "silence_dbfs": silence_dbfs,
        }
        self.detect_size = detect_size
        self.faces = faces

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> WorkItem:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[WorkItem]:
        """One batch (the DataLoader asks for a batch at once): decoded, and with ``faces`` their faces found,
        MTCNN running once over all their frames as it would in the main process."""
        items = [self._decode(index) for index in indices]
        if self.faces is not None:
            find_faces(self.faces, items)  # only the crops cross back to the main process, not the frames
        return items

    def _decode(self, index: int) -> WorkItem:
        part, task = self.items[index]
        try:
            clip = decode_clip(task, **self.options)
            began = time.perf_counter()
            views, scales = [], []
            for frame in clip.frames:
                view, scale = detection_view(frame, self.detect_size)
                # Tensors cross from the worker through shared memory rather than a pipe.
                views.append(torch.from_numpy(np.ascontiguousarray(view)))
                scales.append(scale)
            frames = [torch.from_numpy(np.ascontiguousarray(frame)) for frame in clip.frames]
            clip.frames = []
            clip.seconds += time.perf_counter() - began
            return WorkItem(part, task, clip, frames, views, scales, timings={"decode": clip.seconds})
        except MediaError as err:
            return WorkItem(part, task, reject=task.rejected(err.reason, err.detail))
        except Exception as err:  # one odd file must not stop a two-million-clip run; it is reported
            return WorkItem(part, task, reject=task.rejected(FAILED, f"{task.media}: {type(err).__name__}: {err}"))


def find_faces(faces: SpeakerFaceFinder, items: Sequence[WorkItem]) -> None:
    """Finds the face of every decoded clip among ``items`` in one pass, and drops their frames."""
    waiting = [item for item in items if item.awaits_detection]
    clips = []
    for item in waiting:
        assert item.clip is not None
        frames, views = [frame.numpy() for frame in item.frames], [view.numpy() for view in item.views]
        clips.append(ClipFrames(item.task, frames, item.clip.frame_times, views, item.scales))
    for item, (found, seconds) in zip(waiting, faces.find(clips), strict=True):
        item.timings["detect"] = seconds
        if isinstance(found, Reject):
            item.reject, item.clip = found, None
        else:
            item.face = found
        item.frames, item.views = [], []


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
    """The main-process side of ``s2f prepare``: embed, and first detect, choose and align unless the workers did.

    Args:
        teacher: The frozen face network (``embed_images(uint8 [B, 3, H, W]) -> [B, D]``).
        parts: The whole plan; each rank takes every ``world_size``-th part from its rank on.
        digest: :func:`plan_digest` of ``parts``, checked to agree across ranks.
        batch_size: Clips per predict step (and per teacher call).
        num_workers: DataLoader worker processes decoding media (and finding faces, with ``detect_in_workers``).
        detect_in_workers: The workers find the faces too, each over the batch it decoded (on the CPU);
            otherwise this process does, on its device.
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
        detect_in_workers: bool = False,
        decode: dict[str, Any],
        min_face_size: float,
        center_margin: float,
        min_confidence: float,
        landmarks: str,
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.detector = FaceDetector(min_confidence=min_confidence)  # a submodule: Lightning moves it to the device
        self.aligner = FaceAligner(landmarks, FACE_SIZE)
        # Holds the same detector object, so it follows the module to the device.
        self.faces = SpeakerFaceFinder(
            self.detector, self.aligner, min_face_size=min_face_size, center_margin=center_margin
        )
        self.parts = list(parts)
        self.digest = digest
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.detect_in_workers = detect_in_workers
        self.decode_options = decode
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
        # On a CPU, the workers need cores too. OpenMP threads that compete with them for a core spin
        # instead of sleeping: MTCNN's many small convolutions ran 20x slower with 2 threads than with 1
        # on a busy 2-core machine. Give this process only the cores the workers leave (each worker runs
        # torch on one thread, the DataLoader's default).
        self._threads = torch.get_num_threads()
        if self.device.type == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            torch.set_num_threads(
                max(1, min(self._threads, cores // max(1, self.trainer.num_devices) - self.num_workers))
            )

    def on_predict_end(self) -> None:
        torch.set_num_threads(self._threads)

    def _worker_faces(self) -> SpeakerFaceFinder:
        """The face finder the workers run: this module's on a CPU; on another device, one with a CPU copy of
        MTCNN, as a worker must not touch the device (the main process holds it)."""
        if self.device.type == "cpu":
            return self.faces
        detector = FaceDetector(min_confidence=self.detector.min_confidence)
        return SpeakerFaceFinder(
            detector, self.aligner, min_face_size=self.faces.min_face_size, center_margin=self.faces.center_margin
        )

    def predict_dataloader(self) -> DataLoader[WorkItem]:
        # Called after Lightning has moved this module to its device.
        faces = self._worker_faces() if self.detect_in_workers else None
        dataset = DecodeDataset(self.my_parts(), **self.decode_options, faces=faces)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate,
            persistent_workers=False,
            multiprocessing_context=worker_context() if self.num_workers > 0 else None,
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Frames go to the detector as arrays and crops to the teacher as one batch; moving every
        # decoded frame to the device here would only copy pixels the detector shrinks anyway.
        return batch

    def predict_step(self, batch: list[WorkItem], batch_idx: int = 0) -> list[Outcome]:
        # The clips the workers only decoded; on a GPU, MTCNN runs on the device, over the whole batch.
        find_faces(self.faces, batch)
        outcomes = [Outcome(item.part, None, item.reject, dict(item.timings)) for item in batch]
        accepted = [(position, item, item.face) for position, item in enumerate(batch) if item.face is not None]
        if not accepted:
            return outcomes
        began = time.perf_counter()
        images = torch.from_numpy(np.stack([face.crop for _, _, face in accepted])).permute(0, 3, 1, 2)
        embeddings = self.teacher.embed_images(images.to(self.device)).float().cpu().numpy()
        expected = (len(accepted), int(self.teacher.embed_dim))
        if embeddings.shape != expected:
            raise S2FError(f"teacher {self.teacher.name!r} returned embeddings {embeddings.shape}, not {expected}")
        embed_share = (time.perf_counter() - began) / len(accepted)
        for (position, item, face), embedding in zip(accepted, embeddings, strict=True):
            task, clip = item.task, item.clip
            assert clip is not None
            outcome = outcomes[position]
            outcome.timings["embed"] = embed_share
            if not _storable(embedding):  # a NaN row would stop the writer, and the whole run
                detail = f"{task.media}: the teacher's embedding holds NaN/inf or exceeds float16 (|x| > 65504)"
                outcome.reject = task.rejected(FAILED, detail)
                continue
            outcome.record = ClipRecord(
                clip_id=task.clip_id,
                speaker_id=task.speaker_id,
                audio=clip.audio,
                face=face.crop,
                embedding=embedding,
                landmarks=face.landmarks,
                split=task.split,
                source_video=task.source,
                source_start=clip.audio_start,
                source_end=clip.audio_start + clip.audio.shape[0] / SAMPLE_RATE,
                frame_time=face.frame_time,
                metadata=dict(task.metadata),
            )
        return outcomes


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

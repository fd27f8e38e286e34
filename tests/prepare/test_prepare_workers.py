"""`s2f prepare` finding faces in the DataLoader workers (the CPU path) gives what the main process gives.

On a CPU each worker detects, chooses and aligns over the batch it decoded; elsewhere the main process
does, on its device. Both must keep and reject the same clips for the same reasons, with the same crops,
landmarks and embeddings (on a GPU, up to float rounding between MTCNN there and on the CPU).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from helpers.corpus import EXPECTED, records
from helpers.detection_log import LOG, LoggingDetector, calls
from s2f.prepare import engine, prepare
from s2f.prepare.engine import DecodeDataset, PlannedPart, WorkItem, _collate
from s2f.prepare.faces import FoundFace, SpeakerFaceFinder
from s2f.prepare.options import ComputeOptions
from s2f.prepare.rejects import read_rejects
from s2f.prepare.sources import read_avspeech
from s2f.vision.detection import FaceAligner, FaceDetector

FRAMES = 2  # two frames per clip, so that one MTCNN call takes the frames of several clips and of one clip


@pytest.fixture(scope="module")
def corpus(prepare_corpus: Path) -> Path:
    return prepare_corpus  # shared read-only by every module (conftest.py)


def _tasks(corpus: Path) -> list:
    return read_avspeech(corpus / "avspeech.csv", corpus / "videos")


@pytest.mark.slow
def test_workers_find_the_same_faces_as_the_main_process(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = {"num_frames": FRAMES, "batch_size": 4, "part_size": 5, "accelerator": "cpu", "devices": 1}
    monkeypatch.setattr(engine, "FaceDetector", LoggingDetector)
    LOG.append(tmp_path / "main.log")
    here = prepare(
        _tasks(corpus), tmp_path / "main", "dlib_resnet", detect_in_workers=False, num_workers=1, progress=False,
        **common,
    )  # fmt: skip
    LOG.append(tmp_path / "workers.log")
    # The defaults on a CPU: workers that detect, one per core.
    there = prepare(_tasks(corpus), tmp_path / "workers", "dlib_resnet", progress=False, **common)

    # Where MTCNN ran: in the main process, or only in the workers, each on one torch thread.
    main_calls, worker_calls = calls(tmp_path / "main.log"), calls(tmp_path / "workers.log")
    assert main_calls and {where for where, _ in main_calls} == {"main"}
    assert set(worker_calls) == {("worker", 1)}
    assert len(worker_calls) == len(main_calls)  # one call per batch in both: a worker batches as the main process

    # The same clips kept, the same rejected, with the same reasons and details.
    rejected_here = {r.clip_id: (r.reason, r.detail) for r in read_rejects(tmp_path / "main" / "rejects.jsonl")}
    rejected_there = {r.clip_id: (r.reason, r.detail) for r in read_rejects(tmp_path / "workers" / "rejects.jsonl")}
    assert rejected_there == rejected_here
    assert {clip_id: reason for clip_id, (reason, _) in rejected_here.items()} == {
        k: v for k, v in EXPECTED.items() if v != "written"
    }
    rows_here, rows_there = records(tmp_path / "main"), records(tmp_path / "workers")
    assert sorted(rows_there) == sorted(rows_here) == sorted(k for k, v in EXPECTED.items() if v == "written")
    for clip_id, row in rows_here.items():
        other = rows_there[clip_id]
        assert (other.frame_time, other.split, other.source_start) == (row.frame_time, row.split, row.source_start)
        np.testing.assert_array_equal(other.audio, row.audio)
        # The same frames in the same MTCNN batches on the same CPU: the same bits.
        np.testing.assert_array_equal(other.face, row.face)
        np.testing.assert_array_equal(other.landmarks, row.landmarks)
        np.testing.assert_array_equal(other.embedding, row.embedding)

    # Detection is still reported apart from decoding, summed over the workers.
    for summary in (here, there):
        assert summary.timings["decode"] > 0 and summary.timings["detect"] > 0 and summary.timings["embed"] > 0
        assert "detect" in summary.table()


def _dataset(corpus: Path) -> DecodeDataset:
    wanted = ("astro-01_x_1.000_7.500", "two_faces_0.000_6.000")  # one face found, one reject
    tasks = tuple(t for t in _tasks(corpus) if t.clip_id in wanted)
    faces = SpeakerFaceFinder(FaceDetector(), FaceAligner("auto"), min_face_size=64.0, center_margin=0.5)
    options = {"max_seconds": 6.0, "min_seconds": 3.0, "num_frames": 1, "silence_dbfs": -60.0, "detect_size": 640}
    return DecodeDataset([PlannedPart(0, tasks)], **options, faces=faces)


def _same(a: WorkItem, b: WorkItem) -> None:
    assert (a.task.clip_id, a.reject) == (b.task.clip_id, b.reject)
    assert (a.face is None) == (b.face is None)
    if a.face is not None and b.face is not None:
        np.testing.assert_array_equal(a.face.crop, b.face.crop)
        np.testing.assert_array_equal(a.face.landmarks, b.face.landmarks)


@pytest.mark.slow
def test_the_dataset_pickles_for_spawned_workers_and_sends_only_the_crop(corpus: Path) -> None:
    dataset = _dataset(corpus)
    found, rejected = dataset[0], dataset[1]  # the aligner has loaded dlib's model in this process now
    assert isinstance(found.face, FoundFace) and found.face.crop.shape == (224, 224, 3)
    assert found.frames == [] and found.views == [] and found.reject is None and found.clip is not None
    assert found.clip.frames == []  # the frames stay in the worker
    assert rejected.reject is not None and rejected.reject.reason == "face_not_at_center" and rejected.clip is None
    assert set(found.timings) == {"decode", "detect"}

    # What spawn sends each worker: MTCNN's weights (about 2 MB), not dlib's 100 MB landmark model.
    assert len(pickle.dumps(dataset)) < 8_000_000
    again = pickle.loads(pickle.dumps(dataset))
    _same(again[0], found)

    loader = DataLoader(dataset, batch_size=2, num_workers=1, multiprocessing_context="spawn", collate_fn=_collate)
    (batch,) = list(loader)
    _same(batch[0], found)
    _same(batch[1], rejected)


def test_workers_and_detection_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import s2f.prepare.run as run

    monkeypatch.setattr(run, "_cores", lambda: 4)
    cpu, gpu = True, False
    assert run._workers(ComputeOptions(), cpu, 1) == (4, True)  # the workers detect: every core works
    assert run._workers(ComputeOptions(), cpu, 2) == (2, True)
    assert run._workers(ComputeOptions(detect_in_workers=False), cpu, 1) == (3, False)
    assert run._workers(ComputeOptions(num_workers=0), cpu, 1) == (0, False)
    assert run._workers(ComputeOptions(num_workers=2), cpu, 1) == (2, True)
    assert run._workers(ComputeOptions(), gpu, 1) == (3, False)  # batched detection on the device
    assert run._workers(ComputeOptions(detect_in_workers=True), gpu, 1) == (3, True)


def test_the_command_line_leaves_the_choice_to_the_accelerator_unless_told() -> None:
    from s2f.cli.prepare_command import _options, _parser

    options = _options()
    parser = _parser(options)
    base = ["--folder", "media", "--out", "shards"]
    for extra, expected in (([], None), (["--detect-in-workers"], True), (["--no-detect-in-workers"], False)):
        assert options.kwargs(parser.parse_args(base + extra))["compute"].detect_in_workers is expected


@pytest.mark.gpu
@pytest.mark.slow
def test_on_a_gpu_both_paths_agree(corpus: Path, tmp_path: Path) -> None:
    common = {"num_frames": FRAMES, "batch_size": 4, "accelerator": "gpu", "devices": 1, "progress": False}
    here = prepare(_tasks(corpus), tmp_path / "main", "dlib_resnet", num_workers=1, **common)
    # The workers get their own CPU copy of MTCNN: a forked worker cannot use CUDA.
    there = prepare(
        _tasks(corpus), tmp_path / "workers", "dlib_resnet", detect_in_workers=True, num_workers=2, **common
    )
    assert here.rejected == there.rejected
    rows_here, rows_there = records(tmp_path / "main"), records(tmp_path / "workers")
    assert sorted(rows_here) == sorted(rows_there)
    for clip_id, row in rows_here.items():  # MTCNN batched on the GPU and alone on the CPU: float rounding apart
        other = rows_there[clip_id]
        np.testing.assert_allclose(other.landmarks, row.landmarks, atol=0.5)
        a, b = row.embedding.astype(np.float64), other.embedding.astype(np.float64)
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.9999, clip_id

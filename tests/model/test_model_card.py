"""Every saved model folder carries a model card, and an evaluation given to it shows up beside its chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2f import DECODERS, ENCODERS, Speech2Face
from s2f.cli import main as s2f_main

METRICS = {
    "data": {"root": "shards/", "split": "test", "clips": 180, "speakers": 60},
    "headline": {"seconds": "6s", "gallery_size": 60.0, "recall_at_1": 0.05, "chance_at_1": 1 / 60,
                 "recall_at_5": 0.278, "chance_at_5": 5 / 60, "recall_at_10": 0.472, "chance_at_10": 10 / 60,
                 "angle_deg": 19.21, "mean_face_angle_deg": 19.62, "gender_agreement": 0.789, "gender_chance": 0.496},
    "protocol": {"retrieval": "gallery = one face per held-out speaker; chance = K / gallery size exactly"},
}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Speech2Face:
    return Speech2Face(ENCODERS.create("s2f_cnn_tiny"), DECODERS.create("linear_face_decoder_tiny"), clip_seconds=3.0,
                       teacher={"name": "vggface_tiny", "embed_dim": 64})  # fmt: skip


def _sections(card: str) -> dict[str, str]:
    parts = card.split("\n## ")
    return {part.splitlines()[0]: part for part in parts[1:]}


def test_save_pretrained_writes_a_card_with_the_model_its_use_limits_and_the_papers_ethics(
    model: Speech2Face, tmp_path: Path
) -> None:
    card = (model.save_pretrained(tmp_path / "m", training={"data": "the toy corpus"}) / "README.md").read_text()
    sections = _sections(card)
    assert list(sections) == [
        "Model", "Data and teacher", "Training recipe", "Evaluation", "Intended use", "Limits",
        "Ethical considerations", "How to use",
    ]  # fmt: skip
    assert "PaperCNNEncoder" in sections["Model"] and "LinearFaceDecoder" in sections["Model"]
    assert "3 s at 16000 Hz" in sections["Model"] and "vggface_tiny" in sections["Data and teacher"]
    assert "the toy corpus" in sections["Data and teacher"] and "not recorded" in sections["Training recipe"]
    assert "No evaluation was given" in sections["Evaluation"]
    assert "cannot recover the true identity" in sections["Ethical considerations"]
    assert "average-looking" in sections["Limits"] and "not the speaker's true face" in sections["Limits"]
    Speech2Face.from_pretrained(tmp_path / "m")  # the card is beside the model, not in its way


def test_s2f_export_puts_the_eval_figures_beside_their_chance_and_protocol(model: Speech2Face, tmp_path: Path) -> None:
    source = model.save_pretrained(tmp_path / "m")
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    out = tmp_path / "exported"
    args = ["export", str(source), str(out), "--eval", str(tmp_path / "metrics.json"), "--recipe", "paper debug"]
    assert s2f_main(args) == 0
    evaluation = _sections((out / "README.md").read_text())["Evaluation"]
    assert "| retrieval R@1 (gallery of 60 faces) | 5.0% | 1.7% |" in evaluation
    assert "| retrieval R@10 (gallery of 60 faces) | 47.2% | 16.7% |" in evaluation
    assert "19.2 | 19.6 (the mean face)" in evaluation and "78.9% | 49.6%" in evaluation
    assert (
        "chance = K / gallery size exactly" in evaluation
        and "the test split of `shards/` (180 clips, 60 speakers; 6s of voice per clip)" in evaluation
    )
    assert "paper debug" in (out / "README.md").read_text()


def test_s2f_export_refuses_a_file_that_is_not_an_eval_result(
    model: Speech2Face, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = model.save_pretrained(tmp_path / "m")
    (tmp_path / "other.json").write_text("{}")
    assert s2f_main(["export", str(source), str(tmp_path / "x"), "--eval", str(tmp_path / "other.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("not an s2f eval metrics.json (no 'headline'); give the one `s2f eval` wrote")

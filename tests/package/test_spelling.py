"""One spelling ("center"): names that s2f 0.1 wrote the British way into checkpoints, rejects files,
resumable prepare state and keywords are still read, as today's names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from s2f.prepare.options import FaceOptions, PrepareOptions
from s2f.prepare.parts import PartStore
from s2f.prepare.rejects import FACE_NOT_AT_CENTER, read_rejects
from s2f.train import Speech2FaceSystem


def test_a_checkpoint_that_spells_the_mean_embedding_centre_loads_into_embedding_center() -> None:
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", center_embeddings=True)
    state = system.state_dict()
    mean = torch.linspace(-1.0, 1.0, state["embedding_center"].numel())
    state["embedding_centre"] = mean
    del state["embedding_center"]

    fresh = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", center_embeddings=True)
    fresh.load_state_dict(state)

    assert torch.equal(fresh.embedding_center, mean)


def test_a_rejects_file_with_the_old_reason_code_reads_as_todays(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    line = {"clip_id": "a", "speaker_id": "s", "reason": "face_not_at_centre", "detail": "none at the given centre"}
    path.write_text(json.dumps(line) + "\n")

    (reject,) = read_rejects(path)

    assert reject.reason == FACE_NOT_AT_CENTER == "face_not_at_center"


def test_a_root_started_with_the_old_settings_keys_resumes_under_the_new_ones(tmp_path: Path) -> None:
    today = {"center_margin": 0.5, "face": {"size": 224, "center_y": 0.55}, "landmarks": "mtcnn5"}
    PartStore(tmp_path).check_settings(today, overwrite=False)
    settings_file = next(tmp_path.rglob("*settings*.json"))
    old = {"centre_margin": 0.5, "face": {"size": 224, "centre_y": 0.55}, "landmarks": "mtcnn5"}
    settings_file.write_text(json.dumps(old))

    PartStore(tmp_path).check_settings(today, overwrite=False)  # no complaint: the same settings

    with pytest.raises(Exception, match=r"center_margin: 0\.5 then, 0\.7 now"):
        PartStore(tmp_path).check_settings({**today, "center_margin": 0.7}, overwrite=False)


def test_the_old_prepare_keyword_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="centre_margin= is deprecated; use center_margin="):
        options = PrepareOptions.from_keywords({}, {"centre_margin": 0.25})

    assert options.face == FaceOptions(center_margin=0.25)
    with pytest.raises(TypeError, match="both centre_margin= and center_margin="), pytest.warns(DeprecationWarning):
        PrepareOptions.from_keywords({}, {"centre_margin": 0.25, "center_margin": 0.5})

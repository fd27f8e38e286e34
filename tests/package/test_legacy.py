"""Files written by s2f 0.1 (before the package was laid out anew) load with today's code.

``tests/fixtures/legacy`` holds a saved model folder and a shard root that the 0.1 code itself wrote
(``make_fixtures.py`` says how); the inputs they were made from are rebuilt here and compared with
what is read back.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from s2f import Speech2Face
from s2f.model.inference import InferenceSettings
from s2f.shards import ClipDataset, iter_records, mean_embedding, read_manifest

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"


@pytest.fixture(scope="module")
def made() -> object:
    """The fixture script as a module: it knows the inputs the files were written from."""
    spec = importlib.util.spec_from_file_location("legacy_fixtures", LEGACY / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.host_sensitive
def test_a_model_folder_saved_by_0_1_loads_and_predicts_what_0_1_predicted(made: object) -> None:
    model = Speech2Face.from_pretrained(LEGACY / "model")
    expected = torch.tensor(json.loads((LEGACY / "model_expected.json").read_text())["embedding"])

    # fp32, as 0.1 predicted (bf16 where the CPU has it is the default since; tests/model/test_inference.py bounds it)
    fp32 = InferenceSettings(inference_precision="fp32")
    predicted = model.predict((made.voice(), 16_000), settings=fp32).embedding  # type: ignore[attr-defined]

    assert model.clip_seconds == 1.0 and model.teacher == {"name": "toy"}
    assert predicted.shape == (16,)
    torch.testing.assert_close(predicted, expected, rtol=1e-4, atol=1e-5)


def test_a_shard_root_written_by_0_1_reads_back_every_field(made: object, tmp_path: Path) -> None:
    root = shutil.copytree(LEGACY / "shards", tmp_path / "shards")  # readers may write litdata caches
    manifest = read_manifest(root)
    assert (manifest.s2f_version, manifest.teacher, manifest.embed_dim) == ("0.1.0", "toy", 8)
    assert {name: (info.clips, info.speakers) for name, info in manifest.splits.items()} == {
        "train": (2, 1),
        "val": (1, 1),
    }

    records = [*iter_records(root, "train"), *iter_records(root, "val")]

    assert [(r.clip_id, r.speaker_id, r.split) for r in records] == list(made.CLIPS)  # type: ignore[attr-defined]
    for index, record in enumerate(records):
        written = made.clip(index)  # type: ignore[attr-defined]
        assert np.array_equal(record.audio, written["audio"])  # FLAC is lossless
        assert np.abs(record.face.astype(int) - written["face"]).mean() < 2.0  # a JPEG of a smooth face
        assert np.array_equal(record.embedding, written["embedding"].astype(np.float16))
        assert np.array_equal(record.landmarks, written["landmarks"])
        assert (record.source_video, record.source_start, record.frame_time) == (
            f"videos/{record.speaker_id}.mp4",
            1.5 * index,
            1.5 * index,
        )
        assert record.metadata == {"gender": "f" if record.speaker_id == "alice" else "m", "age": 30 + index}
    train = np.stack([made.clip(i)["embedding"].astype(np.float16) for i in (0, 1)])  # type: ignore[attr-defined]
    torch.testing.assert_close(
        mean_embedding(root, "train"), torch.from_numpy(train.astype(np.float64).mean(0)).float()
    )


def test_a_shard_root_written_by_0_1_streams_as_a_training_dataset(tmp_path: Path) -> None:
    root = shutil.copytree(LEGACY / "shards", tmp_path / "shards")

    items = list(ClipDataset(root, "train", decode_faces=True))

    assert [item["clip_id"] for item in items] == ["c0", "c1"]
    assert items[0]["audio"].dtype == torch.float32 and items[0]["audio"].shape == (8_000,)
    assert items[0]["face"].shape == (3, 224, 224) and items[0]["embedding"].shape == (8,)

"""End to end through the CLI: real files -> shards -> `s2f fit` with the recipes -> a saved model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.shards import ShardFactory
from s2f import Speech2Face
from s2f.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def shards(shard_factory: ShardFactory) -> Path:
    return shard_factory.toy(speakers=12, clips_per_speaker=4, held_out=2)


def _fit(shards: Path, out: Path, *extra: str) -> list[dict[str, str]]:
    args = [
        "fit", "--config", str(RECIPES / "debug.yaml"),
        "--data.init_args.data_dir", str(shards), "--data.init_args.clip_seconds", "3",
        "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out), *extra,
    ]  # fmt: skip
    assert main(args) == 0
    (metrics,) = out.glob("debug/version_*/metrics.csv")
    with metrics.open() as handle:
        return list(csv.DictReader(handle))


def _per_epoch(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.mark.slow
def test_debug_recipe_learns_and_the_saved_model_reloads(shards: Path, tmp_path: Path) -> None:
    rows = _fit(shards, tmp_path / "run", "--trainer.max_epochs", "4")
    train_loss = _per_epoch(rows, "train/loss_epoch")
    val_angle = _per_epoch(rows, "val/angle_deg")
    assert len(train_loss) == 4 and len(val_angle) == 4
    assert train_loss[-1] < train_loss[0], train_loss
    assert val_angle[-1] < val_angle[0], val_angle  # held-out speakers, predicted closer to their faces
    assert {"train/l2_epoch", "train/distill_epoch", "val/l2", "val/distill"} <= set(rows[0])

    (checkpoint,) = (tmp_path / "run").glob("debug/version_*/checkpoints/last.ckpt")
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert not any(k.startswith("teacher.") for k in raw["state_dict"]), "the frozen teacher must not be saved"
    assert raw["s2f"]["preprocessing"]["clip_seconds"] == 3.0

    exported = tmp_path / "exported"
    assert main(["export", str(checkpoint), str(exported)]) == 0
    voice = next((shards.parent / "media").glob("id0011/clip*.wav"))
    from_ckpt = Speech2Face.from_pretrained(checkpoint).predict(voice).embedding
    from_folder = Speech2Face.from_pretrained(exported).predict(voice).embedding
    assert torch.equal(from_ckpt, from_folder)
    assert json.loads((exported / "config.json").read_text())["teacher"]["name"] == "vggface_tiny"
    calibrated = tmp_path / "calibrated"
    assert main(["export", str(checkpoint), str(calibrated), "--calibrate-on", str(shards)]) == 0
    config = json.loads((calibrated / "config.json").read_text())
    assert config["version"] == 2 and config["calibration"]["fitted_on"]["split"] == "train"
    moved = Speech2Face.from_pretrained(calibrated).predict(voice).embedding
    assert not torch.allclose(moved, from_folder)

    assert main(["predict", "--model", str(exported), str(voice), "-o", str(tmp_path / "e.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "e.npy")[0], from_folder.numpy())

    # Lightning's own predict and test subcommands on the same recipe and checkpoint.
    common = ["--config", str(RECIPES / "debug.yaml"), "--data.init_args.data_dir", str(shards),
              "--data.init_args.clip_seconds", "3", "--trainer.logger.init_args.save_dir", str(tmp_path / "eval"),
              "--ckpt_path", str(checkpoint)]  # fmt: skip
    assert main(["test", *common]) == 0
    assert main(["predict-lightning", *common]) == 0
    (predicted,) = (tmp_path / "eval").glob("debug/version_*/predictions/embeddings.npy")
    clip_ids = json.loads((predicted.parent / "clip_ids.json").read_text())
    assert np.load(predicted).shape == (8, 64) and len(set(clip_ids)) == 8  # 2 test speakers x 4 clips


def test_print_config_stacks_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fit", "--config", str(RECIPES / "paper.yaml"), "--print_config"])
    assert exited.value.code == 0
    paper = capsys.readouterr().out
    assert "WandbLogger" in paper and "s2f.encoders.PaperCNNEncoder" in paper and "bf16-mixed" in paper
    assert "lambda_distill: 200.0" in paper and "lr_decay_steps: 10000" in paper
    with pytest.raises(SystemExit):
        main(
            ["fit", "--config", str(RECIPES / "paper.yaml"), "--config", str(RECIPES / "debug.yaml"), "--print_config"]
        )
    stacked = capsys.readouterr().out
    assert "encoder: s2f_cnn_tiny" in stacked and "CSVLogger" in stacked and "WandbLogger" not in stacked
    assert "lambda_distill: 200.0" in stacked  # what debug does not override comes from the paper


@pytest.mark.slow
def test_paper_recipe_runs_with_wandb_offline(shards: Path, tmp_path: Path) -> None:
    args = [
        "run", str(RECIPES / "paper.yaml"),
        "--model.init_args.encoder", "s2f_cnn_tiny", "--model.init_args.teacher", "vggface_tiny",
        "--model.init_args.teacher_weights", "null", "--data.init_args.data_dir", str(shards),
        "--data.init_args.num_workers", "0", "--data.init_args.clip_seconds", "1",
        "--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
        "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path),
    ]  # fmt: skip
    assert main(args) == 0
    assert list(tmp_path.glob("wandb/offline-run-*")), "the W&B logger should have written an offline run"


def test_bad_inputs_are_one_line_errors(shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_weights = ["fit", "--config", str(RECIPES / "paper.yaml"), "--data.init_args.data_dir", str(shards)]
    assert main(missing_weights) == 2
    # Lightning's own INFO lines (the seed, the precision) may precede it, depending on whether an
    # earlier test configured logging; the error itself is the one line s2f adds.
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("INFO: ")]
    assert errors == [
        "s2f: error: weights/vgg_face_dag.pth: no such file for the VGG-Face weights; "
        "check the path (nothing is downloaded)"
    ]
    future = tmp_path / "future"
    future.mkdir()
    for item in shards.iterdir():
        (future / item.name).symlink_to(item)
    (future / "s2f_shards.json").unlink()
    manifest = json.loads((shards / "s2f_shards.json").read_text())
    (future / "s2f_shards.json").write_text(json.dumps({**manifest, "version": 2}))
    args = [
        "fit",
        "--config",
        str(RECIPES / "debug.yaml"),
        "--data.init_args.data_dir",
        str(future),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    assert main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("s2f: error: ") and str(future) in error and "version" in error
    assert main(["predict", "--model", str(tmp_path / "none"), "x.wav"]) == 2
    assert "no such model folder" in capsys.readouterr().err

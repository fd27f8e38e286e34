"""``s2f demo``: the whole pipeline on a toy corpus, on any machine, in about a minute.

toy wav + jpg files -> shards (tiny VGG-Face teacher) -> fit the tiny paper CNN -> export a
saved model -> predict held-out voices, with a summary of what changed while training.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """Where the demo wrote things and what it measured."""

    out: Path
    model_dir: Path
    train_loss: list[float]
    val_angle_deg: list[float]
    matched_angle_deg: float
    mismatched_angle_deg: float
    mean_face_angle_deg: float


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False, seed: int = 0) -> DemoResult:
    """Runs the demo into ``out`` and returns its measurements.

    Args:
        out: Folder for the corpus, shards, training logs and the saved model.
        quick: Fewer speakers, 3 s clips and two epochs (about 20 s on two cores).
        seed: Seed of the corpus and of training.
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from ._registry import TEACHERS
    from .audio import Waveform
    from .data import build_shards_from_pairs, iter_records
    from .data.datamodule import S2FDataModule
    from .data.toy import make_toy_corpus
    from .lit import Speech2FaceSystem
    from .pipeline import Speech2Face

    out = Path(out)
    speakers, epochs, seconds = (10, 2, 3.0) if quick else (16, 5, 6.0)
    print(f"[1/4] writing a toy corpus of {speakers} speakers (wav + jpg) to {out / 'media'}")
    pairs = make_toy_corpus(out / "media", speakers=speakers, clips_per_speaker=4, seed=seed)
    print(f"[2/4] embedding the faces with the tiny VGG-Face teacher into shards at {out / 'shards'}")
    build_shards_from_pairs(pairs, out / "shards", TEACHERS.create("vggface_tiny"), overwrite=True)

    print(f"[3/4] training the tiny paper CNN for {epochs} epochs on {seconds:g} s clips")
    L.seed_everything(seed, verbose=False)
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    data = S2FDataModule(str(out / "shards"), batch_size=8, clip_seconds=seconds, seed=seed)
    logger = CSVLogger(str(out), name="logs")
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(out),
    )
    trainer.fit(system, datamodule=data)

    model_dir = system.export().save_pretrained(out / "model")
    print(f"[4/4] saved the model to {model_dir}; predicting the test speakers' voices from the saved model")
    model = Speech2Face.from_pretrained(model_dir)
    records = list(iter_records(out / "shards", "test"))
    predictions = model.predict([Waveform(r.audio, 16_000) for r in records], seconds=seconds)
    predicted = torch.stack([p.embedding for p in predictions])
    true = torch.from_numpy(np.stack([r.embedding for r in records])).float()
    same_speaker = torch.tensor([[a.speaker_id == b.speaker_id for b in records] for a in records])
    angles = _angles(predicted, true)
    # The bar to clear: always answering the average training face, whatever the voice.
    mean_face = torch.from_numpy(
        np.mean([r.embedding.astype(np.float32) for r in iter_records(out / "shards", "train")], 0)
    )
    mean_face_angle = float(_angles(mean_face[None], true).mean())

    with Path(logger.log_dir, "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    result = DemoResult(
        out,
        model_dir,
        train_loss=[float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")],
        val_angle_deg=[float(r["val/angle_deg"]) for r in rows if r.get("val/angle_deg")],
        matched_angle_deg=float(angles.diagonal().mean()),
        mismatched_angle_deg=float(angles[~same_speaker].mean()),
        mean_face_angle_deg=mean_face_angle,
    )
    _print_summary(result)
    return result


def _angles(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between every prediction (rows) and every true face embedding (columns)."""
    cosine = F.normalize(predicted, dim=-1) @ F.normalize(true, dim=-1).T
    return torch.rad2deg(torch.acos(cosine.clamp(-1, 1)))


def _print_summary(result: DemoResult) -> None:
    print()
    print("  what                                      first      last")
    print(f"  train loss (paper's total)            {result.train_loss[0]:>9.2f} {result.train_loss[-1]:>9.2f}")
    print(f"  held-out angle to true face (deg)     {result.val_angle_deg[0]:>9.2f} {result.val_angle_deg[-1]:>9.2f}")
    print(f"  test voices: angle to their own face (deg)          {result.matched_angle_deg:>9.2f}")
    print(f"  test voices: angle to other speakers' faces (deg)   {result.mismatched_angle_deg:>9.2f}")
    print(f"  baseline: the average training face (deg)          {result.mean_face_angle_deg:>9.2f}")
    print()
    print(f"model: {result.model_dir} (load it with s2f.Speech2Face.from_pretrained)")
    print("This toy run checks the machinery end to end; a model this small, trained this briefly, need not beat")
    print("the average-face baseline. See the README for training on real data.")

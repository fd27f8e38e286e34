"""Training in tests: a quiet Lightning ``Trainer`` (:func:`quiet_trainer`), and ``s2f fit`` arguments for the
reliability tests (:func:`fit_args`: the debug recipe on toy shards, checkpoints every few steps).

Checkpoints go to a fixed folder (``RUN/checkpoints``): ``--ckpt_path last`` looks for ``last.ckpt`` in
the checkpoint callback's folder. Every step checkpoint is kept (``save_top_k: -1``), so a test can
compare them, and the loggers are off, so that the checkpoints are all a run writes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

__all__ = ["RECIPE", "StepLog", "fit_args", "quiet_trainer", "read_steps", "weights"]

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "debug.yaml"

QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "limit_val_batches": 0,
}
"""What a test's Trainer does not do unless it asks: run on a GPU, log, checkpoint, draw progress or a model
summary, validate."""


def quiet_trainer(root: Path | str | None = None, **settings: Any) -> L.Trainer:
    """A Lightning ``Trainer`` writing under ``root``, with :data:`QUIET` unless ``settings`` say otherwise.

    ``root`` may be left out by a run that writes nothing (no logger, no checkpoints).

    ``settings`` are the Trainer's own keywords (``max_steps=3``, ``enable_checkpointing=True``,
    ``limit_val_batches=1``, ``strategy="ddp"``, ...) and win over the quiet ones.
    """
    where = {} if root is None else {"default_root_dir": str(root)}
    return L.Trainer(**{**QUIET, **where, **settings})


def fit_args(
    shards: Path,
    run: Path,
    *,
    epochs: int,
    every: int,
    batch_size: int = 4,
    num_workers: int = 0,
    callbacks: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The arguments after ``s2f fit``; the overrides are written to ``RUN/overrides.yaml`` (``run`` is created)."""
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(run / "checkpoints"), "every_n_train_steps": every}
        | {"save_last": True, "save_top_k": -1},
    }
    overrides = {
        "trainer": {
            "max_epochs": epochs,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "default_root_dir": str(run),
            "logger": False,
            "callbacks": [checkpoint, *(callbacks or [])],
        },
        "data": {
            "init_args": {
                "data_dir": str(shards),
                "batch_size": batch_size,
                "num_workers": num_workers,
                "clip_seconds": 1.0,
            }
        },
    }
    run.mkdir(parents=True, exist_ok=True)
    config = run / "overrides.yaml"
    config.write_text(yaml.safe_dump(overrides))
    return ["--config", str(RECIPE), "--config", str(config)]


def weights(checkpoint: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """A checkpoint's global step and model weights (loads only tensors: ``weights_only``)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state["global_step"]), state["state_dict"]


class StepLog(L.Callback):
    """Appends ``global_step`` to a file as each training batch starts: how far a run got, for a test that kills it.

    Args:
        path: File to append to.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(f"{trainer.global_step} {time.monotonic()}\n")


def checkpoint_abs_sum(folder: Path, step: int) -> float:
    """The sum of the absolute trainable weights (as :mod:`helpers.nodes` sums them) in ``folder``'s checkpoint
    of ``step`` (the debug recipe's tiny system)."""
    from s2f.train import Speech2FaceSystem

    trainable = {
        name for name, p in Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny").named_parameters() if p.requires_grad
    }
    (path,) = folder.glob(f"epoch=*-step={step}.ckpt")
    _, state = weights(path)
    assert trainable <= state.keys()
    return float(sum(state[name].double().abs().sum() for name in trainable))


def read_steps(path: Path) -> list[tuple[int, float]]:
    """The ``(global_step, monotonic time)`` lines a :class:`StepLog` wrote (none when the file is missing)."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(int(step), float(when)) for step, when in (line for line in lines if len(line) == 2)]

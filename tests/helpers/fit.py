"""``s2f fit`` arguments for the reliability tests: the debug recipe on toy shards, checkpoints every few steps.

Checkpoints go to a fixed folder (``RUN/checkpoints``): ``--ckpt_path last`` looks for ``last.ckpt`` in
the checkpoint callback's folder. Every step checkpoint is kept (``save_top_k: -1``), so a test can
compare them, and the loggers are off, so that the checkpoints are all a run writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

__all__ = ["RECIPE", "fit_args", "weights"]

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "debug.yaml"


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

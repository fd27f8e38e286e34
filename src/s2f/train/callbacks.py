"""Callbacks for s2f's training systems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

__all__ = ["EmbeddingWriter"]


class EmbeddingWriter(BasePredictionWriter):
    """Writes what ``s2f predict-lightning --config ...`` computes: ``embeddings.npy`` [N, D], ``clip_ids.json``.

    Under distributed prediction every rank writes its own pair of files, suffixed with its rank.

    Args:
        output_dir: Folder to write into; by default ``predictions/`` under the trainer's log dir.
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = output_dir

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Any,
        batch_indices: Any,
    ) -> None:
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        if not batches:
            return
        embeddings = torch.cat([b["embedding"] for b in batches]).float().cpu().numpy()
        clip_ids = [clip for b in batches for clip in (b.get("clip_id") or [])]
        folder = Path(self.output_dir or Path(trainer.log_dir or trainer.default_root_dir) / "predictions")
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        np.save(folder / f"embeddings{suffix}.npy", embeddings)
        (folder / f"clip_ids{suffix}.json").write_text(json.dumps(clip_ids))
        print(f"wrote {len(embeddings)} embeddings to {folder}")

"""Logging shared by s2f's training systems."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["log_terms"]


def log_terms(
    module: L.LightningModule, stage: str, total: torch.Tensor, terms: dict[str, torch.Tensor], batch_size: int
) -> None:
    """Logs ``stage/loss`` (on the progress bar) and every ``stage/term``: per step while training, per epoch always."""
    on_step = stage == "train"
    module.log(f"{stage}/loss", total, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=batch_size)
    for name, value in terms.items():
        module.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=True, batch_size=batch_size)

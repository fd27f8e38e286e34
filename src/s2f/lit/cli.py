"""LightningCLI for s2f recipes: ``class_path`` / ``init_args``, stacked ``--config`` files."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.cli import LightningCLI

__all__ = ["S2FLightningCLI", "run_lightning_cli"]


class S2FLightningCLI(LightningCLI):
    """Lightning's CLI with any LightningModule / LightningDataModule chosen by the recipe."""


def run_lightning_cli(args: Sequence[str]) -> S2FLightningCLI:
    """Runs ``fit``/``validate``/``test``/``predict`` as LightningCLI does, on the given arguments."""
    return S2FLightningCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=list(args),
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )

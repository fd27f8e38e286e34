"""LightningCLI for s2f recipes: ``class_path`` / ``init_args``, stacked ``--config`` files."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import lightning as L
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from ..errors import S2FError

__all__ = ["S2FLightningCLI", "run_lightning_cli"]


class S2FLightningCLI(LightningCLI):
    """Lightning's CLI with any LightningModule / LightningDataModule chosen by the recipe.

    GPU recipes ask for ``bf16-mixed``; when such a recipe runs with ``accelerator: auto`` on a
    machine without a GPU, training falls back to fp32 (``32-true``), which is what a CPU without
    AMX runs fastest and most accurately. An explicit ``accelerator: cpu`` keeps the precision asked for.
    """

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is None:
            return
        precision = str(trainer.get("precision"))
        if precision in _GPU_PRECISIONS and trainer.get("accelerator") == "auto" and not _has_accelerator():
            rank_zero_info(f"s2f: no GPU found, so training runs in 32-true instead of {precision}")
            trainer["precision"] = "32-true"

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as exc:
            # jsonargparse reports a constructor's error as a failed match of every type in a Union;
            # the s2f error underneath says what is actually wrong, in one line.
            cause = _s2f_error_in_chain(exc)
            if cause is None:
                raise
            raise cause from None


_GPU_PRECISIONS = ("bf16-mixed", "16-mixed", "bf16", "16")


def _has_accelerator() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps is not None and mps.is_available())


def _s2f_error_in_chain(exc: BaseException) -> S2FError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, S2FError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def run_lightning_cli(args: Sequence[str]) -> S2FLightningCLI:
    """Runs ``fit``/``validate``/``test``/``predict`` as LightningCLI does, on the given arguments."""
    program, sys.argv = sys.argv, sys.argv[:1]  # the arguments come from `args`; LightningCLI warns when both are set
    try:
        return S2FLightningCLI(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=list(args),
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
        )
    finally:
        sys.argv = program
        _finish_wandb_run()


def _finish_wandb_run() -> None:
    # WandbLogger leaves its run open (a later logger in the same process would silently join it);
    # one CLI command is one run, so close it here, which also flushes offline runs to disk.
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()

"""LightningCLI for s2f recipes: ``class_path`` / ``init_args``, stacked ``--config`` files."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

import lightning as L
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from ..errors import S2FError
from .checkpoint_io import disk_full_error, install_atomic_checkpoints

__all__ = ["S2FLightningCLI", "run_lightning_cli"]


class S2FLightningCLI(LightningCLI):
    """Lightning's CLI with any LightningModule / LightningDataModule chosen by the recipe.

    GPU recipes ask for ``bf16-mixed``; when such a recipe runs with ``accelerator: auto`` on a
    machine without a GPU, training falls back to fp32 (``32-true``), which is what a CPU without
    AMX runs fastest and most accurately. An explicit ``accelerator: cpu`` keeps the precision asked for.
    ``sync_batchnorm`` (on in ``ddp.yaml``) is turned off on the CPU, where DDP refuses SyncBatchNorm:
    each process then normalises its own batch, so the DDP recipe still runs as a smoke test there.
    """

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        # s2f always passes its arguments in `args` and leaves sys.argv as the user typed it: Lightning's
        # DDP launcher starts the other ranks by re-running sys.argv, so it must hold the whole command.
        # LightningCLI warns whenever both are set, which here is every run, never a mistake.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended", category=UserWarning)
            super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is None:
            return
        precision = str(trainer.get("precision"))
        if precision in _GPU_PRECISIONS and trainer.get("accelerator") == "auto" and not _has_accelerator():
            rank_zero_info(f"s2f: no GPU found, so training runs in 32-true instead of {precision}")
            trainer["precision"] = "32-true"
        if trainer.get("sync_batchnorm") and _runs_on_the_cpu(trainer.get("accelerator")):
            rank_zero_info("s2f: SyncBatchNorm needs GPUs, so on the CPU each process normalises its own batch")
            trainer["sync_batchnorm"] = False

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
        # A checkpoint is whole or absent, and a full disk is one line (s2f.train.checkpoint_io).
        install_atomic_checkpoints(self.trainer)


_GPU_PRECISIONS = ("bf16-mixed", "16-mixed", "bf16", "16")


def _has_accelerator() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps is not None and mps.is_available())


def _runs_on_the_cpu(accelerator: object) -> bool:
    return accelerator == "cpu" or (accelerator == "auto" and not _has_accelerator())


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
    """Runs ``fit``/``validate``/``test``/``predict`` as LightningCLI does, on the given arguments.

    ``sys.argv`` stays untouched. With ``strategy: ddp`` and several devices, Lightning starts ranks 1..N-1
    by running this process's command line again (``sys.executable`` with ``sys.argv``, or ``-m`` and the
    ``__main__`` module's name), so each of them reaches this function with the same ``args``: the ``s2f``
    command derives them from ``sys.argv``, a script that passes fixed ones passes them again.
    """
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
    except OSError as err:  # a full disk under a logger or the saved config: one line too
        full = disk_full_error(err)
        if full is None:
            raise
        raise full from None
    finally:
        _finish_wandb_run()


def _finish_wandb_run() -> None:
    # WandbLogger leaves its run open (a later logger in the same process would silently join it);
    # one CLI command is one run, so close it here, which also flushes offline runs to disk.
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()

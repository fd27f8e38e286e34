"""What each rank of a multi-process run was started with and what it did, written from inside the run.

``LaunchRecorder`` is a Lightning callback that a test adds to an ``s2f fit`` command line
(``--trainer.callbacks+=helpers.launch.LaunchRecorder --trainer.callbacks.init_args.out_dir DIR``, with
``tests/`` on ``PYTHONPATH``). Every rank writes ``DIR/rank{N}.json``: its ``sys.argv`` and
``sys.orig_argv`` (the interpreter's own command line), the ``__main__`` module it runs, a digest of every
environment variable, its loss at every step, and a checksum of the trained weights at the end. A rank that
never reaches the end of training writes nothing. With ``probe_spawn`` each rank also starts one DataLoader
worker with the ``spawn`` start method and records what that worker sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader


def environment_digest() -> dict[str, str]:
    """Every environment variable, with its value replaced by a short hash (the files never hold secrets)."""
    return {key: hashlib.sha256(value.encode()).hexdigest()[:16] for key, value in os.environ.items()}


def process_view() -> dict[str, Any]:
    """The command line, main module and environment this process was started with."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return {
        "pid": os.getpid(),
        "argv": list(sys.argv),
        "orig_argv": list(sys.orig_argv),
        "main_module": getattr(spec, "name", None),
        "main_file": getattr(main, "__file__", None),
        "environ": environment_digest(),
    }


class ProcessViewDataset:
    """One item: the view of the worker process that loads it (a class, so that ``spawn`` can pickle it)."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        return process_view()


def spawned_worker_view() -> dict[str, Any]:
    """What a DataLoader worker started with ``spawn`` sees, as the loaders would start it under macOS's default."""
    loader = DataLoader(ProcessViewDataset(), batch_size=None, num_workers=1, multiprocessing_context="spawn")
    (view,) = list(loader)
    return view


def _weights_checksum(module: torch.nn.Module) -> float:
    return float(sum(parameter.detach().double().sum() for parameter in module.parameters() if parameter.requires_grad))


class LaunchRecorder(L.Callback):
    """Writes ``out_dir/rank{global_rank}.json`` at the end of training (see the module's docstring).

    Args:
        out_dir: The folder every rank writes into.
        probe_spawn: Also record what a DataLoader worker started with ``spawn`` sees.
    """

    def __init__(self, out_dir: str, probe_spawn: bool = False) -> None:
        self.out_dir = out_dir
        self.probe_spawn = probe_spawn
        self.record: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record = {
            **process_view(),
            "global_rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "strategy": type(trainer.strategy).__name__,
            "ddp_kwargs": getattr(trainer.strategy, "_ddp_kwargs", {}),
            "sync_batchnorm_layers": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in pl_module.modules()),
            "losses": [],
            "weights_at_start": _weights_checksum(pl_module),
        }
        if self.probe_spawn:
            self.record["spawned_worker"] = spawned_worker_view()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.record["losses"].append(float(outputs["loss"]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record["global_step"] = trainer.global_step
        self.record["weights_at_end"] = _weights_checksum(pl_module)
        text = json.dumps(self.record, indent=1, default=repr)
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(text)

"""What each rank of a sharded (FSDP2) run holds, written from inside the run.

``ShardRecorder`` is a Lightning callback that a test adds to an ``s2f fit`` command line (with ``tests/`` on
``PYTHONPATH``). Every rank writes ``DIR/rank{N}.json`` at the end of training: its strategy, for every
parameter whether it is a sharded ``DTensor`` and how many of its elements this rank holds, how many
parameters the optimizer steps, its losses, and a checksum of the whole (gathered) encoder at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.distributed.tensor import DTensor


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


class ShardRecorder(L.Callback):
    """Writes ``out_dir/rank{global_rank}.json`` at the end of training (see the module's docstring).

    Args:
        out_dir: The folder every rank writes into.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.record: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        self.record = {
            "global_rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "strategy": type(trainer.strategy).__name__,
            "encoder_class": type(pl_module.encoder).__name__,
            "parameters": {
                name: {
                    "sharded": isinstance(p, DTensor),
                    "local": (p.to_local() if isinstance(p, DTensor) else p).numel(),
                    "full": p.numel(),
                }
                for name, p in pl_module.named_parameters()
            },
            "optimized": sum(len(group["params"]) for group in optimizer.param_groups),
            "losses": [],
        }

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.record["losses"].append(float(outputs["loss"]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # full_tensor() is a collective: every rank gathers every parameter, in the same order.
        whole = [_full(p.detach()).double() for p in pl_module.encoder.parameters()]
        self.record["global_step"] = trainer.global_step
        self.record["encoder_checksum"] = float(sum(t.sum() for t in whole))
        self.record["encoder_norm"] = float(torch.cat([t.flatten() for t in whole]).norm())
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record, indent=1))

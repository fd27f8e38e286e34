"""What each rank of a multi-node run was, which clips it trained on, and where its weights ended.

``ClipRecorder`` is a Lightning callback that a test adds to an ``s2f fit`` command line (with ``tests/`` on
``PYTHONPATH``). Every rank writes ``DIR/rank{N}.json`` at the end of training: its global, local and node
rank as Lightning resolved them from the launcher's environment, the launcher's own variables, the clip
ids of every step by epoch, its losses, and the exact sum of its trainable weights. With ``step_seconds``
every step waits that long after it ends (the numbers are untouched), which gives a test that kills a node
mid-run the time to do so.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L

LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "GROUP_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class ClipRecorder(L.Callback):
    """Writes ``out_dir/rank{global_rank}.json`` at the end of training (see the module's docstring).

    Args:
        out_dir: The folder every rank writes into.
        step_seconds: Seconds to wait after each step.
    """

    def __init__(self, out_dir: str, step_seconds: float = 0.0) -> None:
        self.out_dir = out_dir
        self.step_seconds = step_seconds
        self.record: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record = {
            "pid": os.getpid(),
            "global_rank": trainer.global_rank,
            "local_rank": trainer.local_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "environment": {key: os.environ.get(key) for key in LAUNCHER_VARIABLES},
            "steps": [],
        }

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int) -> None:
        step = {"epoch": trainer.current_epoch, "step": trainer.global_step, "clips": list(batch["clip_id"])}
        self.record["steps"].append(step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.record["steps"][-1]["loss"] = float(outputs["loss"])
        time.sleep(self.step_seconds)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainable = [p.detach().double() for p in pl_module.parameters() if p.requires_grad]
        self.record["global_step"] = trainer.global_step
        self.record["weights_sum"] = float(sum(p.sum() for p in trainable))
        self.record["weights_abs_sum"] = float(sum(p.abs().sum() for p in trainable))
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record, indent=1))

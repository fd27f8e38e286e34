"""Training steps whose loss is NaN or infinite: skipped, counted and warned about, up to a limit.

One bad batch (a silent clip normalised by zero, an fp16 embedding that overflowed) must not write
NaN into every weight; many of them mean the run itself is broken and should stop with one line.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from ..errors import S2FError

__all__ = ["NonFiniteLoss", "skip_nonfinite_step"]


class NonFiniteLoss(S2FError):
    """More training steps had a NaN or infinite loss than ``max_nonfinite_steps`` allows."""


def skip_nonfinite_step(module: L.LightningModule, total: torch.Tensor, limit: int) -> bool:
    """Whether to skip this step because its loss is NaN or infinite (on any rank, so all ranks agree).

    A skipped step updates no weight (``training_step`` returns ``None``); it is counted in
    ``module.nonfinite_steps`` and logged as ``train/skipped_steps``.

    Raises:
        NonFiniteLoss: On the step that brings the count past ``limit`` (``0``: stop at the first).
    """
    finite = bool(torch.isfinite(total.detach()).all())
    trainer = module._trainer
    if trainer is not None:  # every rank must skip together, or DDP's gradient all-reduce would hang
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
    if finite:
        return False
    skipped = getattr(module, "nonfinite_steps", 0) + 1
    module.__dict__["nonfinite_steps"] = skipped  # a plain attribute: not a parameter, buffer or submodule
    if skipped > limit:
        raise NonFiniteLoss(
            f"step {module.global_step}: the training loss is NaN or infinite, {skipped} steps so far, more than "
            f"max_nonfinite_steps={limit}; check the shards (`s2f check`), lower the learning rate or raise the limit"
        )
    rank_zero_warn(
        f"s2f: step {module.global_step}: the training loss is NaN or infinite; the step is skipped "
        f"({skipped} of at most {limit})"
    )
    if trainer is not None:
        module.log("train/skipped_steps", float(skipped), on_step=True, on_epoch=False, sync_dist=False)
    return True

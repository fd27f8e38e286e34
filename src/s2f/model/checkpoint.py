"""Reading a Lightning checkpoint of an s2f training run without unpickling code, and without Lightning.

A checkpoint holds the run's ``s2f`` record (the model's config) and its state dict; both are plain
values, so ``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError

__all__ = ["read_checkpoint", "strip"]


def read_checkpoint(path: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """The ``s2f`` record and the state dict of a Lightning checkpoint, read without unpickling code."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path}: cannot read this checkpoint without unpickling code ({str(exc).splitlines()[0][:160]})"
        ) from None
    if not isinstance(checkpoint, dict):
        return None, {}
    return checkpoint.get("s2f"), checkpoint.get("state_dict", {})


def strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

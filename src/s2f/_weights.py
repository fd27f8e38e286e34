"""Safe reading of weights files: safetensors, or PyTorch state dicts without unpickling code."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from .errors import WeightsError

__all__ = ["load_into", "read_state_dict"]

_NESTED_KEYS = ("state_dict", "model", "model_state_dict")


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pt/.pth/.bin/.ckpt`` state dict loaded with
    ``weights_only=True`` (plain tensors only; a file that needs pickled code is refused).

    Args:
        path: The weights file.
        what: What the weights are for, used in error messages ("VGG-Face weights").
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: no such file for the {what}; check the path (nothing is downloaded)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file for the {what} ({exc})") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{path}: not a plain PyTorch state dict for the {what} ({reason[:200]}); "
            "convert it to .safetensors or a state dict of tensors"
        ) from None
    for key in _NESTED_KEYS:
        if isinstance(loaded, Mapping) and key in loaded and isinstance(loaded[key], Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"{path}: holds no state dict of tensors for the {what}")
    return dict(loaded)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Copies ``state`` into ``module`` strictly; any missing, extra or mis-shaped tensor is a
    :class:`WeightsError` that names the file and the first offending keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} is {list(state[k].shape)}, expected {list(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if mismatched:
        problems.append(f"shape {_few(mismatched)}")
    if problems:
        raise WeightsError(f"{path} does not match the {what}: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)


def _few(items: list[str], limit: int = 3) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more

"""Safe reading of weights files: safetensors, or PyTorch state dicts without unpickling code."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import WeightsError

__all__ = ["check_against_header", "load_into", "read_state_dict", "refuse_nonfinite"]

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


def check_against_header(skeleton: nn.Module, path: str | Path, what: str) -> None:
    """Checks, before anything is allocated, that a safetensors file holds exactly the tensors ``skeleton`` needs.

    ``skeleton`` is the model built on the meta device from an untrusted config: building it costs no
    memory, so a config with absurd sizes (a 10^9-unit layer) is refused here for not matching the
    file, instead of exhausting memory when the real model is built. Reads only the file's header;
    safetensors itself refuses a header that does not cover the file exactly (truncated or padded).
    """
    path = Path(path)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            stored = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 (a safe_open handle is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file for the {what} ({exc})") from None
    expected = {key: list(tensor.shape) for key, tensor in skeleton.state_dict().items()}
    _refuse_mismatch(path, what, expected, stored)


def _refuse_mismatch(path: Path, what: str, expected: Mapping[str, list[int]], stored: Mapping[str, list[int]]) -> None:
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    mismatched = [
        f"{k} is {stored[k]}, expected {expected[k]}" for k in expected if k in stored and stored[k] != expected[k]
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


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Copies ``state`` into ``module`` strictly; any missing, extra or mis-shaped tensor is a
    :class:`WeightsError` that names the file and the first offending keys."""
    expected = {key: list(tensor.shape) for key, tensor in module.state_dict().items()}
    _refuse_mismatch(Path(path), what, expected, {key: list(tensor.shape) for key, tensor in state.items()})
    module.load_state_dict(state, strict=True)


def refuse_nonfinite(state: Mapping[str, torch.Tensor], path: str | Path, what: str) -> None:
    """A :class:`WeightsError` naming the first tensors that hold NaN or infinity.

    Such a model would load and then predict NaN for every voice (a face of noise on the page); a
    trained model never holds them, so a file that does is damaged or made to look trained.
    """
    bad = [key for key, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise WeightsError(f"{path}: the {what}'s weights hold NaN or infinite values ({_few(bad)})")


def _few(items: list[str], limit: int = 3) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more

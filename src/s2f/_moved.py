"""Old module paths that still import, for one release, with a DeprecationWarning naming the new one.

The package was laid out anew in 0.2 (one idea per folder: ``shards/``, ``prepare/``, ``synth/``,
``vision/``, ``train/``). :data:`MOVED` maps every old module path to its new home; a finder on
``sys.meta_path`` answers imports of the old paths, so ``from s2f.data.shards import ShardWriter``,
a recipe's ``class_path: s2f.lit.Speech2FaceSystem`` and a saved run's config keep working.

A module that moved whole is the very same module object under its old name (so monkeypatching either
name patches both); an old package, or a module that was split in two or more, gets a stand-in module
holding every name of its successors.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

# Old module path -> new module path, or the new modules that share its names (split modules).
MOVED: dict[str, str | tuple[str, ...]] = {
    "s2f.data.shards": ("s2f.shards.format", "s2f.shards.codec", "s2f.shards.reader", "s2f.shards.writer"),
    "s2f.data.remote": "s2f.shards.remote",
    "s2f.data.prepare": ("s2f.prepare.run", "s2f.prepare.summary"),
    "s2f.data.engine": "s2f.prepare.engine",
    "s2f.data.parts": "s2f.prepare.parts",
    "s2f.data.rejects": "s2f.prepare.rejects",
    "s2f.data.media": "s2f.prepare.decode",
    "s2f.data.sources": "s2f.prepare.sources",
    "s2f.data.pairs": "s2f.prepare.pairs",
    "s2f.data.datamodule": "s2f.train.datamodule",
    "s2f.data.toy": "s2f.synth.toy",
    "s2f.data.sample_videos": "s2f.synth.sample_videos",
    "s2f.data.synth": "s2f.synth",
    "s2f.data.synth.world": "s2f.synth.world",
    "s2f.data.synth.voice": "s2f.synth.voice",
    "s2f.data.synth.morph": "s2f.synth.morph",
    "s2f.data.synth.ceiling": "s2f.synth.reference",
    "s2f.data.synth.sources": "s2f.synth.face_sources",
    "s2f.data.synth.media": "s2f.synth.video",
    "s2f.data.synth.command": "s2f.cli.synth_command",
    "s2f.eval.command": "s2f.cli.eval_command",
    "s2f.lit": "s2f.train",
    "s2f.lit.system": "s2f.train.system",
    "s2f.lit.decoder_system": "s2f.train.decoder_system",
    "s2f.lit.callbacks": "s2f.train.callbacks",
    "s2f.lit._logging": "s2f.train._logging",
    "s2f.lit.cli": "s2f.train.lightning_cli",
    "s2f.faces": ("s2f.vision.alignment", "s2f.vision.landmarks", "s2f.vision.images"),
    "s2f.detection": "s2f.vision.detection",
    "s2f.encoders.base": "s2f.encoders.voice_encoder",
    "s2f.teachers.base": "s2f.teachers.face_teacher",
    "s2f.decoders.base": "s2f.decoders.face_decoder",
}


def _new_path(old: str) -> str:
    new = MOVED[old]
    return new if isinstance(new, str) else " / ".join(new)


class _MovedModuleLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module; exec_module fills it or swaps in the moved one

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        # stacklevel 2 skips the import machinery's own frames and names the importing line.
        warnings.warn(
            f"{old} is deprecated and will be removed in the next release; import from {_new_path(old)} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        new = MOVED[old]
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            # An old package: a stand-in whose old submodule names (s2f.data.synth.sources) still resolve.
            _fill_from(module, (new,) if isinstance(new, str) else new)
            module.__getattr__ = lambda name: _old_submodule(old, name)  # type: ignore[method-assign]
        elif isinstance(new, str):
            # The import system returns whatever sys.modules holds once exec_module is done.
            sys.modules[old] = importlib.import_module(new)
        else:
            _fill_from(module, new)


def _old_submodule(package: str, name: str) -> ModuleType:
    if f"{package}.{name}" in MOVED:
        return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def _fill_from(module: ModuleType, sources: Sequence[str]) -> None:
    names: list[str] = []
    for source in sources:
        successor = importlib.import_module(source)
        for name, value in vars(successor).items():
            if not (name.startswith("__") and name.endswith("__")):
                setattr(module, name, value)
        names.extend(getattr(successor, "__all__", ()))
    setattr(module, "__all__", sorted(set(names)))  # noqa: B010  (ModuleType declares no __all__)


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        # Old packages (s2f.lit, s2f.data.synth) get a search path so that their old submodules resolve.
        is_package = any(other.startswith(fullname + ".") for other in MOVED)
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(), is_package=is_package)


_FINDER = _MovedModuleFinder()


def install() -> None:
    """Puts the finder first on ``sys.meta_path`` (once); ``import s2f`` calls it."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)

"""Old module paths that still import, each until the release named beside it, with a DeprecationWarning.

:data:`MOVED` is the one list of them: old module path -> new home (one module, or the modules that
share a split module's names) and the release that removes the old path. Each old path is a plain
stub file at its old place in the tree (timm's way), two lines that call :func:`redirect`; nothing is
installed globally, so ``import s2f`` costs nothing for them.

What a stub guarantees:

- A module that moved whole is the very same module object under its old name (``sys.modules`` holds
  the new module under both names), so monkeypatching either name patches both.
- A module split in two or more gets every name of its successors.
- An old package (``s2f.lit``, ``s2f.data.synth``) is a stand-in holding its successor's names, and
  its old submodules, stub files in its folder, keep importing: ``from s2f.data.synth import sources``
  and a recipe's ``class_path: s2f.lit.Speech2FaceSystem`` still work.
- The warning names the new home and the release that removes the old path, and points at the line
  that imported the old path.

Moving a public module (or a private one that a saved file, such as a model folder, checkpoint,
recipe or shard manifest, can name):

1. Move the file to its new home and update every import in src/, tests/, benchmarks/ and docs/.
2. Add a row to :data:`MOVED` below: ``"s2f.old.path": Moved("s2f.new.path", REMOVED_IN)`` (a tuple
   of new paths for a split module). A row whose old path is a package needs its folder's
   ``__init__.py`` as a stub too, and a row for each old submodule that still imports.
3. Write the stub file: ``python -c "import s2f._compat.moved as m; print(m.write_missing_stubs())"``
   writes every missing one from the table (the text is :func:`stub_text`; old packages get
   ``__init__.py`` in their folder).
4. ``python -m pytest tests/package/test_layout.py -q -k moved``: every row has its stub and every stub its
   row, each warns naming its new home and resolves to it.

A public name that had a second door (``s2f.Speech2FaceLoss`` beside ``s2f.train.losses``) is a row
of :data:`MOVED_NAMES`; the module that held it answers it from its ``__getattr__`` through
:func:`moved_name`.

When the release named in a row ships, delete the row and its stub file together.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "MOVED_NAMES", "REMOVED_IN", "Moved", "moved_name", "redirect", "stub_path", "stub_text"]

# Before 1.0 a minor release may change the API, always with a deprecation period of one release
# (CHANGELOG.md): paths moved during 0.2's development go in 0.3.
REMOVED_IN = "0.3.0"


@dataclass(frozen=True)
class Moved:
    """Where an old module path went, and the release that removes the old path."""

    new: str | tuple[str, ...]
    removed_in: str

    @property
    def homes(self) -> tuple[str, ...]:
        """The new module paths: one for a module that moved whole, several for a split one."""
        return (self.new,) if isinstance(self.new, str) else self.new


MOVED: dict[str, Moved] = {
    "s2f.data.shards": Moved(
        ("s2f.shards.format", "s2f.shards.codec", "s2f.shards.reader", "s2f.shards.writer"), REMOVED_IN
    ),
    "s2f.data.remote": Moved("s2f.shards.remote", REMOVED_IN),
    "s2f.data.prepare": Moved(("s2f.prepare.run", "s2f.prepare.summary"), REMOVED_IN),
    "s2f.data.engine": Moved("s2f.prepare.engine", REMOVED_IN),
    "s2f.data.parts": Moved("s2f.prepare.parts", REMOVED_IN),
    "s2f.data.rejects": Moved("s2f.prepare.rejects", REMOVED_IN),
    "s2f.data.media": Moved("s2f.prepare.decode", REMOVED_IN),
    "s2f.data.sources": Moved("s2f.prepare.sources", REMOVED_IN),
    "s2f.data.pairs": Moved("s2f.prepare.pairs", REMOVED_IN),
    "s2f.data.datamodule": Moved("s2f.train.datamodule", REMOVED_IN),
    "s2f.data.toy": Moved("s2f.synth.toy", REMOVED_IN),
    "s2f.data.sample_videos": Moved("s2f.synth.sample_videos", REMOVED_IN),
    "s2f.data.synth": Moved("s2f.synth", REMOVED_IN),
    "s2f.data.synth.world": Moved("s2f.synth.world", REMOVED_IN),
    "s2f.data.synth.voice": Moved("s2f.synth.voice", REMOVED_IN),
    "s2f.data.synth.morph": Moved("s2f.synth.morph", REMOVED_IN),
    "s2f.data.synth.ceiling": Moved("s2f.synth.reference", REMOVED_IN),
    "s2f.data.synth.sources": Moved("s2f.synth.face_sources", REMOVED_IN),
    "s2f.data.synth.media": Moved("s2f.synth.video", REMOVED_IN),
    "s2f.data.synth.command": Moved("s2f.cli.synth_command", REMOVED_IN),
    "s2f.eval.command": Moved("s2f.cli.eval_command", REMOVED_IN),
    "s2f.eval.similarity": Moved("s2f.eval.metrics.similarity", REMOVED_IN),
    "s2f.eval.retrieval": Moved("s2f.eval.metrics.retrieval", REMOVED_IN),
    "s2f.eval.consistency": Moved("s2f.eval.metrics.consistency", REMOVED_IN),
    "s2f.eval.galleries": Moved("s2f.eval.metrics.galleries", REMOVED_IN),
    "s2f.eval.matching": Moved("s2f.eval.metrics.matching", REMOVED_IN),
    "s2f.eval.identity_score": Moved("s2f.eval.metrics.identity_score", REMOVED_IN),
    "s2f.eval.craniofacial": Moved("s2f.eval.metrics.craniofacial", REMOVED_IN),
    "s2f.eval.demographics": Moved("s2f.eval.metrics.demographics", REMOVED_IN),
    "s2f.eval.attribute_baseline": Moved("s2f.eval.metrics.attribute_baseline", REMOVED_IN),
    "s2f.eval.label_groups": Moved("s2f.eval.metrics.label_groups", REMOVED_IN),
    "s2f.eval.own_voice": Moved("s2f.eval.metrics.own_voice", REMOVED_IN),
    "s2f.eval.report_parts": Moved("s2f.eval.report.report_parts", REMOVED_IN),
    "s2f.eval.figures": Moved("s2f.eval.report.figures", REMOVED_IN),
    "s2f.eval.tracking": Moved("s2f.eval.report.tracking", REMOVED_IN),
    "s2f.eval.protocols_report": Moved("s2f.eval.report.protocols_report", REMOVED_IN),
    "s2f.eval.headline": Moved("s2f.eval.report.headline", REMOVED_IN),
    "s2f.pipeline": Moved(("s2f.model.speech2face", "s2f.model.decoder_folder", "s2f.model.saved_folder"), REMOVED_IN),
    "s2f.inference": Moved("s2f.model.inference", REMOVED_IN),
    "s2f.onnx_export": Moved("s2f.model.onnx", REMOVED_IN),
    "s2f.calibration": Moved(("s2f.model.calibration", "s2f.eval.calibrate"), REMOVED_IN),
    "s2f.model_card": Moved("s2f.model.card", REMOVED_IN),
    "s2f.cartoon": Moved("s2f.model.cartoon", REMOVED_IN),
    "s2f.angles": Moved("s2f.model.angles", REMOVED_IN),
    "s2f.lit": Moved("s2f.train", REMOVED_IN),
    "s2f.lit.system": Moved("s2f.train.system", REMOVED_IN),
    "s2f.lit.decoder_system": Moved("s2f.train.decoder_system", REMOVED_IN),
    "s2f.lit.callbacks": Moved("s2f.train.callbacks", REMOVED_IN),
    "s2f.lit._logging": Moved("s2f.train._logging", REMOVED_IN),
    "s2f.lit.cli": Moved("s2f.train.lightning_cli", REMOVED_IN),
    "s2f.faces": Moved(("s2f.vision.alignment", "s2f.vision.landmarks", "s2f.vision.images"), REMOVED_IN),
    "s2f.detection": Moved("s2f.vision.detection", REMOVED_IN),
    "s2f.encoders.base": Moved("s2f.encoders.voice_encoder", REMOVED_IN),
    "s2f.teachers.base": Moved("s2f.teachers.face_teacher", REMOVED_IN),
    "s2f.decoders.base": Moved("s2f.decoders.face_decoder", REMOVED_IN),
    "s2f.losses": Moved("s2f.train.losses", REMOVED_IN),
    "s2f.config_schema": Moved("s2f.model.schema", REMOVED_IN),
    "s2f.config.schema": Moved("s2f.model.schema", REMOVED_IN),
    "s2f.config_rules": Moved("s2f.config.rules", REMOVED_IN),
    "s2f.model.weights": Moved("s2f.config.weights", REMOVED_IN),
    "s2f.bundled_recipes": Moved("s2f.train.bundled_recipes", REMOVED_IN),
}

# Names that had a second door into the package: old dotted name -> the one documented name. The
# module that held the old name answers it from its ``__getattr__`` through :func:`moved_name`.
MOVED_NAMES: dict[str, Moved] = {
    "s2f.Speech2FaceLoss": Moved("s2f.train.losses.Speech2FaceLoss", REMOVED_IN),
    "s2f.train.S2FDataModule": Moved("s2f.data.S2FDataModule", REMOVED_IN),
    "s2f._registry.ENCODERS": Moved("s2f.encoders.ENCODERS", REMOVED_IN),
    "s2f._registry.TEACHERS": Moved("s2f.teachers.TEACHERS", REMOVED_IN),
    "s2f._registry.DECODERS": Moved("s2f.decoders.DECODERS", REMOVED_IN),
    "s2f.eval.metrics.craniofacial.landmarks_of_faces": Moved("s2f.eval.face_readers.landmarks_of_faces", REMOVED_IN),
    "s2f.eval.metrics.demographics.classify_faces": Moved("s2f.eval.face_readers.classify_faces", REMOVED_IN),
}

PACKAGE = Path(__file__).resolve().parent.parent
_MISSING = object()


def is_old_package(old: str) -> bool:
    """Whether an old path was a package: some other old path lies inside it."""
    return any(other.startswith(old + ".") for other in MOVED)


def stub_path(old: str) -> Path:
    """The stub file of an old path: ``s2f/lit/__init__.py`` for an old package, ``s2f/faces.py`` else."""
    relative = Path(*old.split(".")[1:])
    return PACKAGE / relative / "__init__.py" if is_old_package(old) else (PACKAGE / relative).with_suffix(".py")


def stub_text(old: str) -> str:
    """The whole text of an old path's stub file (a test compares every stub with it)."""
    homes = " / ".join(MOVED[old].homes)
    return (
        f'"""Moved to {homes}.\n\nThis path is removed in {MOVED[old].removed_in} (s2f._compat.moved).\n"""\n'
        "\n"
        "from s2f._compat.moved import redirect\n"
        "\n"
        "redirect(__name__)\n"
    )


def redirect(old: str) -> None:
    """Called by the stub at ``old`` while it is imported: warn, then make ``old`` resolve to its new home."""
    moved = MOVED[old]
    # stacklevel 3 skips this function and the stub; the warnings module skips the import machinery's
    # frames by itself, so the warning names the line that imported the old path.
    warnings.warn(
        f"{old} is deprecated and will be removed in {moved.removed_in}; import from {' / '.join(moved.homes)} instead",
        DeprecationWarning,
        stacklevel=3,
    )
    stub = sys.modules[old]
    if is_old_package(old):
        _fill_from(stub, moved.homes)
        stub.__getattr__ = lambda name: _late_name(old, name)  # type: ignore[method-assign]
    elif isinstance(moved.new, str):
        # The import system hands out whatever sys.modules holds once the stub has run.
        sys.modules[old] = importlib.import_module(moved.new)
    else:
        _fill_from(stub, moved.homes)


def moved_name(module: str, name: str) -> Any:
    """For a module's ``__getattr__``: an old name of ``module`` with a warning, or AttributeError."""
    moved = MOVED_NAMES.get(f"{module}.{name}")
    if moved is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    assert isinstance(moved.new, str)
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in {moved.removed_in}; use {moved.new} instead",
        DeprecationWarning,
        stacklevel=3,  # past this function and the module's __getattr__: the line that asked for the name
    )
    home, _, attribute = moved.new.rpartition(".")
    return getattr(importlib.import_module(home), attribute)


def _public_names(module: ModuleType) -> Iterator[str]:
    yield from (name for name in vars(module) if not (name.startswith("__") and name.endswith("__")))
    yield from getattr(module, "__all__", ())


def _fill_from(stub: ModuleType, homes: tuple[str, ...]) -> None:
    names: set[str] = set()
    for home in homes:
        successor = importlib.import_module(home)
        for name in list(_public_names(successor)):
            setattr(stub, name, getattr(successor, name))
        names.update(getattr(successor, "__all__", ()))
    setattr(stub, "__all__", sorted(names))  # noqa: B010  (ModuleType declares no __all__)


def _late_name(package: str, name: str) -> Any:
    """An old package's attribute that was not there when it was imported: an old submodule by name."""
    if f"{package}.{name}" in MOVED:
        return importlib.import_module(f"{package}.{name}")
    for home in MOVED[package].homes:  # a name its successor answers lazily (a deprecated one warns there)
        value = getattr(importlib.import_module(home), name, _MISSING)
        if value is not _MISSING:
            return value
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def write_missing_stubs() -> list[Path]:
    """Writes the stub file of every row that has none yet; returns the files written."""
    written = []
    for old in MOVED:
        path = stub_path(old)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(stub_text(old), encoding="utf-8")
            written.append(path)
    return written

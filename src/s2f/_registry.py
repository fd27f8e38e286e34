"""Named registries of model builders, with third-party plug-ins through entry points.

Each component family holds its registry beside its base class (``ENCODERS`` in
:mod:`s2f.encoders.voice_encoder`, ``TEACHERS`` and ``DECODERS`` likewise), so this module, below the
families, never imports them back. Built-in models register where they are defined, on import.
Third-party packages register through the entry-point groups ``s2f.encoders``, ``s2f.teachers`` and
``s2f.decoders``; an entry point names either a module (importing it registers its models) or a
builder (registered under the entry point's name). Plug-ins load lazily, the first time a registry is
asked for a name it does not know or for its full list, and a plug-in that fails to load warns
instead of crashing.

Example:
    >>> from s2f import ENCODERS
    >>> "s2f_cnn_tiny" in ENCODERS.list("s2f_cnn*")
    True
    >>> encoder = ENCODERS.create("s2f_cnn_tiny")
    >>> encoder.embed_dim
    64
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import inspect
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch.nn as nn

from ._compat.moved import moved_name

__all__ = ["Registry", "RegistryEntry", "all_registries"]

ModelT = TypeVar("ModelT", bound=nn.Module)
BuilderT = TypeVar("BuilderT", bound=Callable[..., Any])

TINY_SUFFIX = "_tiny"


@dataclass(frozen=True)
class RegistryEntry:
    """One registered name: how to build it and where it came from."""

    name: str
    builder: Callable[..., nn.Module]
    tiny: bool
    source: str
    summary: str

    @property
    def tiny_name(self) -> str:
        """The name of this entry's tiny variant (itself when it is one)."""
        return self.name if self.tiny else self.name + TINY_SUFFIX


class Registry(Generic[ModelT]):
    """A name -> builder table for one kind of model (encoders, teachers, decoders).

    Args:
        kind: What the registry holds, for messages ("encoder").
        entry_point_group: The entry-point group third-party packages register in.
    """

    def __init__(self, kind: str, entry_point_group: str) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, RegistryEntry] = {}
        self._plugins_loaded = False
        _REGISTRIES.add(self)

    def register(self, name: str | None = None, *, tiny: bool | None = None) -> Callable[[BuilderT], BuilderT]:
        """Decorator that registers a builder (a function or a class) under ``name``.

        A name ending in ``_tiny`` marks the small variant used by tests and demos; every full-size
        model is expected to ship one. Registering a taken name replaces it with a warning.
        """

        def decorate(builder: BuilderT) -> BuilderT:
            self.add(name or builder.__name__, builder, tiny=tiny)
            return builder

        return decorate

    def add(self, name: str, builder: Callable[..., nn.Module], *, tiny: bool | None = None) -> None:
        """Registers ``builder`` under ``name`` (the non-decorator form of :meth:`register`)."""
        if name in self._entries:
            old = self._entries[name]
            warnings.warn(
                f"s2f: {self.kind} {name!r} from {old.source} is replaced by the one from {_source_of(builder)}",
                stacklevel=3,
            )
        doc = inspect.getdoc(builder) or ""
        self._entries[name] = RegistryEntry(
            name=name,
            builder=builder,
            tiny=name.endswith(TINY_SUFFIX) if tiny is None else tiny,
            source=_source_of(builder),
            summary=doc.splitlines()[0] if doc else "",
        )

    def create(self, name: str, /, **kwargs: Any) -> ModelT:
        """Builds the model registered as ``name``; keyword arguments override its defaults."""
        model = self.get(name).builder(**kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(f"s2f: {self.kind} builder {name!r} returned {type(model).__name__}, not an nn.Module")
        return model  # type: ignore[return-value]

    def get(self, name: str) -> RegistryEntry:
        """The entry for ``name``; loads plug-ins first if the name is unknown."""
        if name not in self._entries:
            self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            close = fnmatch.filter(self._entries, f"*{name.split('_')[0]}*")[:5]
            hint = f" Similar: {', '.join(close)}." if close else ""
            raise KeyError(
                f"s2f: no {self.kind} named {name!r}. Known: {', '.join(sorted(self._entries)) or 'none'}.{hint} "
                f"Third-party {self.kind}s register in the entry-point group {self.entry_point_group!r}."
            ) from None

    def list(self, pattern: str = "*", *, tiny: bool | None = None) -> list[str]:
        """Registered names matching a shell-style ``pattern``, optionally only tiny or only full ones."""
        self.load_plugins()
        names = fnmatch.filter(self._entries, pattern)
        if tiny is not None:
            names = [n for n in names if self._entries[n].tiny == tiny]
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name not in self._entries:
            self.load_plugins()
        return name in self._entries

    def __len__(self) -> int:
        return len(self.list())

    def load_plugins(self) -> None:
        """Imports the entry points of this registry's group, once; a broken plug-in only warns."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                target = entry_point.load()
            except Exception as exc:  # a broken third-party package must not take s2f down
                warnings.warn(
                    f"s2f: skipped {self.kind} plug-in {entry_point.name!r} ({entry_point.value}): "
                    f"{type(exc).__name__}: {exc}",
                    stacklevel=2,
                )
                continue
            # A module registers its models on import; a callable is registered under the entry point's name.
            if callable(target) and not inspect.ismodule(target) and entry_point.name not in self._entries:
                self.add(entry_point.name, target)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} registered)"


def _source_of(builder: Callable[..., Any]) -> str:
    module = getattr(builder, "__module__", None) or "?"
    return module


# Every registry alive, for the saved-config check that asks which packages have registered models; a
# registry a test builds and drops leaves it.
_REGISTRIES: weakref.WeakSet[Registry[Any]] = weakref.WeakSet()


def all_registries() -> list[Registry[Any]]:
    """Every registry alive (the families' three, and any a plug-in or test builds), by kind."""
    return sorted(_REGISTRIES, key=lambda registry: (registry.kind, registry.entry_point_group))


def __getattr__(name: str) -> Any:
    # ENCODERS, TEACHERS and DECODERS moved to their families (s2f._compat.moved.MOVED_NAMES).
    return moved_name(__name__, name)

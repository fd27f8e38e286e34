"""Components that remember how they were built, so a saved model can rebuild itself.

Encoders, teachers and decoders record their constructor arguments; a saved model stores them
as ``{"class_path": ..., "init_args": ...}`` (the same shape LightningCLI uses) beside its
weights, and :func:`build_component` rebuilds the module from that record.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import inspect
import json
import os
from typing import Any, TypeVar

import torch.nn as nn

from ..errors import ConfigError, S2FError, first_line

__all__ = ["RecordsConfig", "build_component", "component_spec", "import_trusted", "trusted_packages"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

INIT_ARGS = "_s2f_init_args"


class RecordsConfig:
    """Mixin that records the arguments of the outermost ``__init__`` call on the instance."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            if INIT_ARGS not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                recorded: dict[str, Any] = {}
                for name, value in list(bound.arguments.items())[1:]:
                    kind = signature.parameters[name].kind
                    if kind is inspect.Parameter.VAR_KEYWORD:
                        recorded.update(value)
                    elif kind is not inspect.Parameter.VAR_POSITIONAL:
                        recorded[name] = value
                # Bypass nn.Module.__setattr__: this runs before nn.Module.__init__.
                self.__dict__[INIT_ARGS] = recorded
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def component_spec(module: nn.Module) -> dict[str, Any]:
    """The ``{"class_path", "init_args"}`` record that rebuilds ``module`` (without its weights)."""
    init_args = module.__dict__.get(INIT_ARGS)
    # FSDP2's fully_shard swaps in a generated subclass (FSDP<Name>); the model is the class under it.
    cls = next(c for c in type(module).__mro__ if not c.__module__.startswith("torch.distributed."))
    if init_args is None:
        raise ConfigError(
            f"{cls.__qualname__} does not record its constructor arguments, so it cannot be saved; "
            "derive it from s2f.encoders.VoiceEncoder (or FaceTeacher / FaceDecoder)"
        )
    spec = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": _jsonable(init_args)}
    try:
        json.dumps(spec)
    except TypeError as exc:
        raise ConfigError(
            f"{cls.__qualname__} has a constructor argument that is not JSON ({exc}); use plain values"
        ) from None
    return spec


# The entry-point groups whose packages may name classes in a saved config (see s2f._registry).
_PLUGIN_GROUPS = ("s2f.encoders", "s2f.teachers", "s2f.decoders")


def trusted_packages() -> set[str]:
    """Top-level packages whose classes a saved config may name: s2f, and every installed s2f plug-in.

    A plug-in is a package that registers models through the entry points, or whose builders are in a
    registry already; the entry points are read, not loaded, so asking imports nothing.
    """
    from .._registry import all_registries

    packages = {"s2f"}
    for group in _PLUGIN_GROUPS:
        for entry_point in importlib.metadata.entry_points(group=group):
            packages.add(entry_point.value.split(":", 1)[0].strip().split(".", 1)[0])
    for registry in all_registries():
        packages.update(entry.source.split(".", 1)[0] for entry in registry._entries.values())
    return packages


def import_trusted(class_path: str, what: str) -> type:
    """The class at ``class_path``, imported only if it belongs to s2f or an installed plug-in.

    Args:
        class_path: ``package.module.Class``.
        what: What the class is for, in messages ("VoiceEncoder", "encoder").
    """
    top = class_path.split(".", 1)[0]
    if top not in trusted_packages():
        raise ConfigError(
            f"refusing to import {class_path!r} for the {what}: saved models may only name classes of s2f "
            "or of an installed s2f plug-in (entry-point groups s2f.encoders/teachers/decoders)"
        )
    try:
        module_name, _, class_name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot rebuild the {what} from {class_path!r}: {exc}; is the package that defines it installed?"
        ) from None
    if not isinstance(cls, type):
        raise ConfigError(f"{class_path} is not a class; refusing to build the {what} from it")
    return cls


def build_component(spec: dict[str, Any], base: type[ModuleT]) -> ModuleT:
    """Rebuilds a module from :func:`component_spec`'s record; it must be a subclass of ``base``.

    Only classes of s2f and of installed plug-ins are imported (see :func:`trusted_packages`). The
    arguments are passed as they are: a record read from a file is first held to
    :mod:`s2f.model.schema` by the loaders.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        raise ConfigError(f"cannot rebuild {base.__name__} from {spec!r}: no class_path")
    if not isinstance(spec.get("init_args", {}), dict):
        raise ConfigError(f"cannot rebuild {base.__name__}: init_args of {spec['class_path']} is not an object")
    class_path = spec["class_path"]
    init_args = dict(spec.get("init_args", {}))
    cls = import_trusted(class_path, base.__name__)
    if not issubclass(cls, base):
        raise ConfigError(f"{class_path} is not a {base.__name__}; refusing to build it")
    try:
        return cls(**init_args)
    except S2FError:
        raise  # already one line that says what to do (a missing extra, a weights file)
    except Exception as exc:  # whatever the constructor makes of values from a file: one line naming them
        raise ConfigError(
            f"cannot build {class_path} from its init_args ({type(exc).__name__}: {first_line(exc)})"
        ) from None

"""Command-line options generated from a function's signature and docstring.

A command lists no keyword of the function it runs: each keyword becomes ``--kebab-name``, typed
from its annotation, defaulted from the signature and explained by the docstring's ``Args:`` entry;
a keyword typed as a dataclass becomes a titled group with one option per field (explained by the
class's ``Attributes:``). A :class:`Flag` changes only what the command line must spell
differently (an older flag, a CLI default, a required option).
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from s2f.errors import ConfigError

from .command_parser import Option, add_options

__all__ = ["Flag", "FunctionOptions", "docstring_entries"]

_UNSET: Any = object()


@dataclass(frozen=True)
class Flag:
    """How one keyword appears on the command line, where ``--kebab-name`` and the signature do not fit.

    Attributes:
        names: Option strings instead of ``--kebab-name`` (a spelling the command has always had).
        default: The command line's default, when it differs from the function's.
        choices: The accepted values (for a ``str`` keyword whose values a constant lists).
        metavar: The placeholder shown in ``--help``.
        shown_default: What ``--help`` shows as the default, instead of ``default``.
        deprecated: Old option strings that still parse for one release, with a one-line notice.
    """

    names: tuple[str, ...] = ()
    default: Any = _UNSET
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    shown_default: str | None = None
    deprecated: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Option:
    name: str  # the keyword (and the argparse dest)
    annotation: Any
    default: Any
    help: str
    group: str | None  # the dataclass keyword this field belongs to


class FunctionOptions:
    """The options of one function's keywords, to add to a parser and to read back as keyword arguments.

    Args:
        function: The function whose keywords become options.
        skip: Keywords the command sets itself (not options).
        flags: Spellings and defaults that differ from the signature, by keyword.

    Example:
        >>> def scale(path: str, *, factor: float = 2.0, verbose: bool = False) -> None:
        ...     '''Scales a file.
        ...
        ...     Args:
        ...         path: The file.
        ...         factor: How much.
        ...         verbose: Say more.
        ...     '''
        >>> options = FunctionOptions(scale, flags={"path": Flag(("--in",))})
        >>> parser = argparse.ArgumentParser(prog="scale")
        >>> options.add_to(parser)
        >>> options.kwargs(parser.parse_args(["--in", "a.txt", "--factor", "3"]))
        {'path': 'a.txt', 'factor': 3.0, 'verbose': False}
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        skip: Sequence[str] = (),
        flags: Mapping[str, Flag] | None = None,
    ) -> None:
        self.function = function
        self.flags = dict(flags or {})
        hints = _type_hints(function)
        docs = docstring_entries(function.__doc__, "Args")
        self.groups: dict[str, type] = {}
        self._parents: dict[str, str | None] = {}  # a nested group's enclosing group
        self._options: list[_Option] = []
        for parameter in inspect.signature(function).parameters.values():
            if parameter.name in skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = hints.get(parameter.name, Any)
            config = _dataclass_in(annotation)
            if config is None:
                self._options.append(
                    _Option(parameter.name, annotation, parameter.default, docs.get(parameter.name, ""), None)
                )
            else:
                self._add_group(parameter.name, config)
        unknown = set(self.flags) - {option.name for option in self._options}
        if unknown:
            raise ValueError(f"{function.__qualname__} has no keyword {sorted(unknown)}")

    def _add_group(self, name: str, config: type, parent: str | None = None) -> None:
        """A dataclass keyword's fields as options of the group ``name``; a field that is a dataclass itself
        (EvalOptions' InferenceSettings) becomes a group of its own, built before its parent's."""
        self.groups[name] = config
        self._parents[name] = parent
        field_hints = _type_hints(config)
        field_docs = docstring_entries(config.__doc__, "Attributes")
        for field in dataclasses.fields(config):
            annotation = field_hints.get(field.name, Any)
            inner = _dataclass_in(annotation)
            if inner is not None:
                self._add_group(field.name, inner, name)
                continue
            default = field.default if field.default is not dataclasses.MISSING else _UNSET
            if field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            self._options.append(_Option(field.name, annotation, default, field_docs.get(field.name, ""), name))

    def options(self, title: str | None = None) -> list[Option]:
        """The keywords as declared options: a dataclass keyword's fields under a group titled by the class's
        first docstring line, the other keywords under ``title`` (None: the command's own options)."""
        titles = {name: _title(name, config) for name, config in self.groups.items()}
        return [
            _declared(option, self.flags.get(option.name, Flag()), titles.get(option.group or "", title))
            for option in self._options
        ]

    def add_to(self, parser: argparse.ArgumentParser, title: str | None = None) -> None:
        """Adds the options to ``parser`` (see :meth:`options`)."""
        add_options(parser, self.options(title))

    def kwargs(self, namespace: argparse.Namespace) -> dict[str, Any]:
        """The keyword arguments of the function, from parsed options (dataclass groups built)."""
        values = {option.name: _tuple_if_list(getattr(namespace, option.name)) for option in self._options}
        kwargs: dict[str, Any] = {o.name: values[o.name] for o in self._options if o.group is None}
        built: dict[str, Any] = {}
        for name, config in reversed(self.groups.items()):  # a nested group was added after its parent
            fields = {o.name: values[o.name] for o in self._options if o.group == name}
            fields.update({inner: built[inner] for inner, parent in self._parents.items() if parent == name})
            try:
                built[name] = config(**fields)
            except ValueError as exc:  # the group checks its fields together: one line, not a traceback
                raise ConfigError(f"options of {_title(name, config)}: {exc}") from None
        kwargs.update({name: built[name] for name, parent in self._parents.items() if parent is None})
        return kwargs


def _tuple_if_list(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # nargs="+" parses a list


def _declared(option: _Option, flag: Flag, group: str | None) -> Option:
    """One keyword as a declared :class:`~s2f.cli.command_parser.Option`."""
    default = option.default if flag.default is _UNSET else flag.default
    required = default is _UNSET or default is inspect.Parameter.empty
    scalar, many = _scalar_type(option.annotation)
    choices = tuple(flag.choices or _literal_values(option.annotation)) or None
    if choices:
        scalar = type(choices[0])
    if required:
        default = None
    elif many and default is not None:
        default = tuple(default)
    return Option(
        option.name,
        option.help,
        names=flag.names,
        type=scalar,
        default=default,
        required=required,
        choices=choices,
        metavar=flag.metavar,
        nargs="+" if many else None,
        group=group,
        shown_default=flag.shown_default,
        deprecated=flag.deprecated,
    )


# -- types --------------------------------------------------------------------------------------------------


def _type_hints(thing: Any) -> dict[str, Any]:
    """Annotations resolved where possible; a name only imported for type checking reads as ``Any``."""
    module = inspect.getmodule(thing)
    namespace = vars(module) if module is not None else {}

    class _AnyIfUnknown(dict[str, Any]):
        def __missing__(self, key: str) -> Any:
            if key in namespace or hasattr(builtins, key):
                raise KeyError(key)
            return Any

    return typing.get_type_hints(thing, localns=_AnyIfUnknown())


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types of a union (``X | None`` and ``Optional[X]`` included), without ``None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(m for member in typing.get_args(annotation) if member is not type(None) for m in _members(member))
    return (annotation,)


def _dataclass_in(annotation: Any) -> type | None:
    found = [m for m in _members(annotation) if isinstance(m, type) and dataclasses.is_dataclass(m)]
    return found[0] if found else None


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    return tuple(v for m in _members(annotation) if typing.get_origin(m) is typing.Literal for v in typing.get_args(m))


def _scalar_type(annotation: Any) -> tuple[Callable[[str], Any], bool]:
    """The parser of one value, and whether the keyword takes several (a sequence)."""
    many = False
    scalars: list[type] = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if origin in (tuple, list, Sequence, typing.Sequence):
            many = True
            member = next((a for a in typing.get_args(member) if a is not Ellipsis), str)
        if member in (bool, int, float, str):
            scalars.append(member)
    if scalars == [bool]:
        return bool, many
    numeric = [s for s in scalars if s in (int, float)]
    if not numeric:
        return str, many
    if str in scalars:  # int | str: a number when it reads as one ("auto", "64MB" stay text)
        return _number_or_text(numeric[0]), many
    return numeric[0], many


def _number_or_text(number: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return number(text)
        except ValueError:
            return text

    parse.__name__ = f"{number.__name__} or str"
    return parse


# -- docstrings ---------------------------------------------------------------------------------------------


def docstring_entries(doc: str | None, section: str) -> dict[str, str]:
    """The entries of one Google-style docstring section (``Args``, ``Attributes``), as plain text.

    Example:
        >>> docstring_entries('''Does it.
        ...
        ...     Args:
        ...         size: Pixels of :func:`~s2f.faces.align`'s ``crop``,
        ...             at most 224.
        ...     ''', "Args")
        {'size': "Pixels of align's crop, at most 224."}
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    entries: dict[str, str] = {}
    inside, indent, name = False, 0, ""
    for line in lines:
        stripped = line.strip()
        if not inside:
            inside = stripped == f"{section}:"
            continue
        if not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:  # the next section
            break
        match = re.match(r"(\*{0,2}\w+)(?: \(.*?\))?: (.*)", stripped)
        if match and (not indent or depth == indent):
            indent, name = depth, match.group(1)
            entries[name] = match.group(2)
        elif name:
            entries[name] += " " + stripped
    return {key: _plain(text) for key, text in entries.items()}


def _plain(text: str) -> str:
    text = re.sub(r":\w+:`~?([\w.]*?)([\w]+)`", lambda m: m.group(2), text)
    return text.replace("``", "")


def _title(name: str, config: type) -> str:
    line = _plain(inspect.cleandoc(config.__doc__ or "").split("\n", 1)[0]).rstrip(".")
    return f"{name} ({line[:1].lower()}{line[1:]})" if line else name

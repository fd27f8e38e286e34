"""One builder for every command's parser: declared options in, an argparse parser out.

A command declares its options, either as :class:`Option` entries (a small declarative spec) or as a
function's keywords (:class:`~s2f.cli._options.FunctionOptions`, which turns a signature into
:class:`Option` entries), and :func:`build_parser` turns them into argparse in one place
(:func:`add_option`), so that every command spells help text, defaults, choices, switches and type
errors alike. :func:`parse` reads the command line, with ``--config FILE.yaml`` where the command has
them (:mod:`s2f.cli.config_file`). An old spelling of an option keeps parsing for one release with a
one-line notice on stderr (:attr:`Option.deprecated`).

Example:
    >>> parser = build_parser(
    ...     "s2f scale",
    ...     "Scale a file.",
    ...     Option("path", "the file", positional=True),
    ...     Option("factor", "how much", type=float, default=2.0),
    ... )
    >>> parse(parser, ["a.txt", "--factor", "3"])
    Namespace(path='a.txt', factor=3.0)
    >>> print(parser.format_help().splitlines()[-1].strip())
    --factor FACTOR  how much (default: 2)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .config_file import REMOVED_IN, add_config_options, old_spelling_notice, parse_with_config

__all__ = [
    "REMOVED_IN",
    "CommandParser",
    "Option",
    "OptionSource",
    "add_option",
    "add_options",
    "build_parser",
    "parse",
    "show_default",
]

_UNSET: Any = object()


class CommandParser(argparse.ArgumentParser):
    """A parser made by :func:`build_parser`; every ``s2f`` subcommand but LightningCLI's is one (a test checks).

    Attributes:
        reads_config: Whether the parser takes ``--config FILE.yaml`` and ``--print_config``.
    """

    reads_config: bool = False


@dataclass(frozen=True)
class Option:
    """One command-line option, declared.

    Attributes:
        dest: The name the parsed value goes under (a function's keyword, a config file's key).
        help: One phrase for ``--help``; the default is added to it, as ``(default: X)``.
        names: Option strings instead of ``--dest-in-kebab-case`` (short forms, spellings kept for years).
        type: The parser of one value; ``bool`` makes a switch: ``--x`` when off by default, ``--no-x`` when
            on, both ``--x`` and ``--no-x`` when the default is None (None: decide for me).
        default: The value when the option is not given.
        required: The command line must give it.
        choices: The accepted values.
        metavar: The placeholder in ``--help`` (default: the last word of the option's name, upper case).
        nargs: ``"+"`` for one or more values, ``"?"`` for an optional positional.
        const: A switch that stores this value (two switches may set one ``dest``: ``--tiny``, ``--full``).
        positional: The option is a positional argument named ``dest``.
        group: The title of the ``--help`` section it is listed in (None: the command's own options).
        exclusive: Options with the same name here exclude each other.
        shown_default: What ``--help`` shows as the default, instead of ``default``.
        deprecated: Old option strings that still parse, until :data:`REMOVED_IN`, with a one-line notice.
    """

    dest: str
    help: str = ""
    names: tuple[str, ...] = ()
    type: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    nargs: str | None = None
    const: Any = _UNSET
    positional: bool = False
    group: str | None = None
    exclusive: str | None = None
    shown_default: str | None = None
    deprecated: tuple[str, ...] = ()

    @property
    def option_strings(self) -> tuple[str, ...]:
        """The strings that name the option on the command line (a positional has none)."""
        if self.positional:
            return ()
        if self.names:
            return self.names
        kebab = self.dest.replace("_", "-")
        return (f"--no-{kebab}",) if self.type is bool and self.default is True else (f"--{kebab}",)


class OptionSource(Protocol):
    """Anything that declares options (:class:`~s2f.cli._options.FunctionOptions`)."""

    def options(self, title: str | None = None) -> list[Option]: ...


def build_parser(
    prog: str,
    description: str,
    *declared: Option | OptionSource,
    epilog: str | None = None,
    usage: str | None = None,
    config_file: bool = False,
    required_choices: Iterable[str] = (),
) -> CommandParser:
    """The parser of one command: its options in the order declared, grouped as they say.

    Args:
        prog: What ``--help`` calls the command (``"s2f export"``).
        description: What the command does, for ``--help``.
        *declared: :class:`Option` entries and option sources (a function's keywords), in ``--help``'s order.
        epilog: Text after the options in ``--help`` (printed as written).
        usage: The usage line instead of argparse's.
        config_file: Add ``--config FILE.yaml`` and ``--print_config`` (:mod:`s2f.cli.config_file`).
        required_choices: Names of :attr:`Option.exclusive` sets of which one option must be given.
    """
    parser = CommandParser(
        prog=prog,
        description=description,
        epilog=epilog,
        usage=usage,
        formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter,
    )
    options = [option for entry in declared for option in ([entry] if isinstance(entry, Option) else entry.options())]
    add_options(parser, options, required_choices)
    if config_file:
        add_config_options(parser)
        parser.reads_config = True
    return parser


def parse(parser: argparse.ArgumentParser, args: Sequence[str]) -> argparse.Namespace:
    """The parsed command line (with its ``--config`` files, when the parser reads them)."""
    if getattr(parser, "reads_config", False):
        return parse_with_config(parser, args)
    return parser.parse_args(args)


def add_options(
    parser: argparse.ArgumentParser, options: Iterable[Option], required_choices: Iterable[str] = ()
) -> None:
    """Adds ``options`` to ``parser``, each in its ``--help`` group and mutually exclusive set (made on first use)."""
    required = set(required_choices)
    groups: dict[str | None, Any] = {None: parser}
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for option in options:
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        target = groups[option.group]
        if option.exclusive is not None:
            if option.exclusive not in exclusive:
                exclusive[option.exclusive] = target.add_mutually_exclusive_group(required=option.exclusive in required)
            target = exclusive[option.exclusive]
        add_option(target, option)


def add_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, option: Option) -> None:
    """Adds ``option`` to ``parser`` (or a group of it): the one place an option becomes argparse."""
    help_text = option.help
    shown = option.shown_default if option.shown_default is not None else show_default(option.default)
    kwargs: dict[str, Any] = {}
    if option.type is bool and option.nargs is None and not option.choices and option.const is _UNSET:
        kwargs["action"] = "store_true" if not option.default else "store_false"
        if option.default is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.default is True:
            help_text = f"Turn off: {help_text[:1].lower()}{help_text[1:]}" if help_text else help_text
        kwargs["default"] = option.default if option.default is None else bool(option.default)
        shown = ""
    elif option.const is not _UNSET:
        kwargs.update(action="store_const", const=option.const, default=option.default)
    else:
        kwargs.update(type=option.type, default=option.default)
        if option.choices:
            kwargs["choices"] = list(option.choices)
        else:
            last = (option.option_strings or (option.dest,))[0].rsplit("-", 1)[-1]
            kwargs["metavar"] = option.metavar or last.upper()
        if option.nargs:
            kwargs["nargs"] = option.nargs
        if option.required:
            kwargs["required"] = True
    if shown and not option.required:
        help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
    help_text = help_text.replace("%", "%%")
    if option.positional:
        parser.add_argument(option.dest, help=help_text, **kwargs)
    else:
        parser.add_argument(*option.option_strings, dest=option.dest, help=help_text, **kwargs)
    for old in option.deprecated:
        if "action" in kwargs:
            raise ValueError(f"{option.dest}: only an option that takes a value can keep an old spelling")
        new = option.option_strings[0]
        parser.add_argument(old, dest=option.dest, action=_OldSpelling, new=new, help=argparse.SUPPRESS, **kwargs)


def show_default(default: Any) -> str:
    """A default as ``--help`` shows it ("" for none: None, False, an empty list).

    Example:
        >>> show_default(0.5), show_default((3.0, 6.0)), show_default(None)
        ('0.5', '3 6', '')
    """
    if default is None or default is False or default == () or default == []:
        return ""
    if isinstance(default, tuple | list):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


class _OldSpelling(argparse._StoreAction):
    """An option's old spelling: stores the value as the new one would, and says once what to write instead."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.renamed_to = new  # what config_file reads to take the old key in a file too

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        notice = old_spelling_notice(parser.prog, option_string or self.option_strings[0], self.renamed_to)
        print(notice, file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)

"""``--config FILE.yaml`` and ``--print_config`` for any command's parser: the one way a command reads options.

A config file is a YAML mapping from an option's keyword (its ``dest``: ``out_dir``, ``batch_size``, the
spelling ``--print_config`` writes) to its value. Files are read in the order given, later ones win, and
flags on the command line win over every file. The file is data: it is read with ``yaml.safe_load``, and
a key can only set an option the parser already has (nothing is imported or fetched because a file says
so). Every mistake in it is one :class:`~s2f.errors.ConfigError` line naming the file, the key and the fix.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="s2f scale")
    >>> _ = parser.add_argument("--factor", type=float, default=2.0)
    >>> add_config_options(parser)
    >>> parse_with_config(parser, ["--factor", "3"]).factor
    3.0
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s2f.errors import ConfigError

__all__ = ["REMOVED_IN", "add_config_options", "config_yaml", "old_spelling_notice", "parse_with_config"]

REMOVED_IN = "0.3.0"
"""The release that stops reading an option's old spelling (one release of deprecation, CHANGELOG.md)."""

_OWN = ("config", "print_config", "help")  # the options of this module (and argparse's), never in a file


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Adds ``--config FILE.yaml`` (repeatable) and ``--print_config`` to ``parser``."""
    group = parser.add_argument_group("configuration file")
    group.add_argument(
        "--config",
        metavar="FILE.yaml",
        action="append",
        default=[],
        help="options from a YAML file (keys as --print_config writes them); repeatable, later files "
        "win, flags on the command line win over files",
    )
    group.add_argument("--print_config", action="store_true", help="print this run's options as YAML and exit")


def parse_with_config(parser: argparse.ArgumentParser, args: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(args)`` with the ``--config`` files' values as defaults under the command line.

    With ``--print_config`` it prints :func:`config_yaml` of the result and exits with status 0.
    """
    files = _config_paths(args)
    values: dict[str, Any] = {}
    for path in files:
        values.update(_read(parser, path))
    given = _dests_on_command_line(parser, args)
    _allow_from_file(parser, values, given)
    parser.set_defaults(**values)
    namespace = parser.parse_args(args)
    if namespace.print_config:
        sys.stdout.write(config_yaml(parser, namespace))
        raise SystemExit(0)
    return namespace


def config_yaml(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> str:
    """The options of a parsed run as the YAML ``--config`` reads back to the same run."""
    import yaml

    values = {dest: _plain(getattr(namespace, dest)) for dest in _dests(parser) if hasattr(namespace, dest)}
    return yaml.safe_dump(values, sort_keys=False, default_flow_style=False, width=100)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _dests(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest not in _OWN and action.dest is not argparse.SUPPRESS and action.dest not in found:
            found[action.dest] = action
    return found


def _config_paths(args: Sequence[str]) -> list[str]:
    """The ``--config`` files in ``args`` (``--config F`` and ``--config=F``), read before parsing."""
    paths: list[str] = []
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--config" and index + 1 < len(args):
            paths.append(args[index + 1])
        elif arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
    return paths


def _read(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """One config file's values, each checked against the option it sets."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{path}: no such config file; give an existing YAML file (`--print_config > FILE.yaml`)")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not readable as YAML ({first}); fix it or start from --print_config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of option: value, not a {type(data).__name__}")
    dests = _dests(parser)
    old = _old_spellings(parser)
    values: dict[str, Any] = {}
    for key, value in data.items():
        dest = str(key).lstrip("-").replace("-", "_")
        if dest not in dests and dest in old:  # a key written before the option was renamed
            new = dests[old[dest].dest]
            print(f"{path}: {old_spelling_notice(parser.prog, str(key), new.dest)}", file=sys.stderr)
            dest = new.dest
        if dest not in dests:
            close = difflib.get_close_matches(dest, list(dests), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"{path}: {parser.prog} has no option {key!r}; {hint}(`{parser.prog} --print_config` lists every key)"
            )
        values[dest] = _checked(path, key, value, dests[dest])
    return values


def _checked(path: str, key: object, value: Any, action: argparse.Action) -> Any:
    """``value`` as the option's own parser would have read it from the command line."""
    flag = "/".join(action.option_strings) or str(action.dest)
    if action.nargs == 0:  # store_true / store_false / BooleanOptionalAction
        if value is None and action.default is None:
            return None
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {key} ({flag}) is true or false, not {value!r}")
        return value
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if value is None:
        return None
    if many:
        items = value if isinstance(value, list) else [value]
        return tuple(_one(path, key, flag, item, action) for item in items)
    if isinstance(value, list | dict):
        raise ConfigError(f"{path}: {key} ({flag}) takes one value, not {value!r}")
    return _one(path, key, flag, value, action)


def _one(path: str, key: object, flag: str, value: Any, action: argparse.Action) -> Any:
    if isinstance(value, list | dict):
        raise ConfigError(f"{path}: {key} ({flag}) takes plain values, not {value!r}")
    convert = action.type if callable(action.type) else None
    try:
        converted = convert(str(value)) if convert is not None and not isinstance(value, bool) else value
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        kind = getattr(convert, "__name__", "the option's type")
        raise ConfigError(f"{path}: {key} ({flag}) must be {kind}, not {value!r}") from None
    if convert is None and not isinstance(value, str):
        converted = str(value)  # a text option given a number in YAML (split: 1) reads as the command line would
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(str(c) for c in action.choices)
        raise ConfigError(f"{path}: {key} ({flag}) is one of {choices}, not {value!r}")
    return converted


def _dests_on_command_line(parser: argparse.ArgumentParser, args: Sequence[str]) -> set[str]:
    """The options spelled on the command line (their dests), so that a file cannot add a rival to them."""
    by_flag = {flag: action.dest for action in parser._actions for flag in action.option_strings}
    given: set[str] = set()
    for arg in args:
        if arg == "--":
            break
        flag = arg.split("=", 1)[0]
        if flag in by_flag:
            given.add(by_flag[flag])
    return given


def _allow_from_file(parser: argparse.ArgumentParser, values: dict[str, Any], given: set[str]) -> None:
    """Options the file sets stop being required on the command line; a mutually exclusive group keeps one
    member: the command line's if it names one, else the file's."""
    for group in parser._mutually_exclusive_groups:
        members = {action.dest for action in group._group_actions}
        from_file = {dest for dest in members & set(values) if values[dest] is not None}
        if members & given:
            for dest in from_file:  # the command line chose another member: the file's one steps aside
                values[dest] = None
        elif len(from_file) > 1:
            names = ", ".join(sorted(from_file))
            raise ConfigError(f"{parser.prog}: the config files set {names}; give only one of them")
        if from_file:
            group.required = False
    for action in parser._actions:
        if action.dest in values and values[action.dest] is not None:
            action.required = False
            if not action.option_strings and action.nargs in (None, "+"):  # a positional the file supplies
                action.nargs = "?" if action.nargs is None else "*"
                action.default = values[action.dest]


def old_spelling_notice(prog: str, old: str, new: str) -> str:
    """The one line an option's old spelling prints, on the command line or as a config file's key.

    Example:
        >>> old_spelling_notice("s2f predict", "--precision", "--inference-precision")
        's2f predict: --precision is now --inference-precision; the old spelling goes in s2f 0.3.0'
    """
    return f"{prog}: {old} is now {new}; the old spelling goes in s2f {REMOVED_IN}"


def _old_spellings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's old option spellings (actions that carry ``renamed_to``), by the key a config file
    would have used for them (``precision``)."""
    return {
        action.option_strings[0].lstrip("-").replace("-", "_"): action
        for action in parser._actions
        if getattr(action, "renamed_to", None)
    }

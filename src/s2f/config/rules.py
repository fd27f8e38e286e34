"""The kinds of value a saved config may hold, each with its bounds: the vocabulary of :mod:`s2f.model.schema`.

A :class:`Rule` says what is wrong with a value in one short phrase, or ``None``; the schema names the
key and the file around it.

Example:
    >>> Integer(1, 4096).problem(10**9)
    'is 1000000000, outside [1, 4096]'
    >>> Text().problem("hf-hub:org/name") is not None, Text().problem("resnet18") is None
    (True, True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_WIDTH",
    "Choice",
    "Flag",
    "Integer",
    "Integers",
    "Keys",
    "Note",
    "Number",
    "Optional",
    "Refused",
    "Rule",
    "Text",
    "WeightsFile",
    "looks_like_a_place",
]

# Widths and counts above this would not fit a GPU anyway; the meta-device check sees the rest.
MAX_WIDTH = 65_536
# A URL or id scheme (http:, file:, hf-hub:, local-dir:, C:) at the start of a string.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def looks_like_a_place(text: str) -> bool:
    """Whether ``text`` could send a loader somewhere: a path, a URL or a ``scheme:`` id.

    Example:
        >>> [looks_like_a_place(t) for t in ("resnet18", "../w.pt", "file:///etc", "~root", "C:x", "a b")]
        [False, True, True, True, True, False]
    """
    return (
        "/" in text or "\\" in text or text.startswith("~") or ".." in text or "\0" in text or bool(_SCHEME.match(text))
    )


class Rule:
    """One argument's type and bounds; :meth:`problem` says what is wrong with a value, or None."""

    def problem(self, value: Any) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Rule):
    """An integer (not a bool) in ``[low, high]``."""

    low: int = 0
    high: int = MAX_WIDTH

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {_short(value)}"
        return None if self.low <= value <= self.high else f"is {value}, outside [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Number(Rule):
    """A finite number in ``[low, high]``; ``positive`` excludes zero."""

    low: float = -1e6
    high: float = 1e6
    positive: bool = False

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a finite number, got {_short(value)}"
        if self.positive and value <= 0:
            return f"is {value}, must be above 0"
        return None if self.low <= value <= self.high else f"is {value}, outside [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Flag(Rule):
    """``true`` or ``false``."""

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {_short(value)}"


@dataclass(frozen=True)
class Choice(Rule):
    """One of a closed set of values."""

    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        ok = any(type(value) is type(choice) and value == choice for choice in self.values)
        return None if ok else f"is {_short(value)}, not one of {', '.join(map(repr, self.values))}"


@dataclass(frozen=True)
class Text(Rule):
    """A short string that names something and points nowhere; ``known`` narrows it to a registry."""

    max_length: int = 100
    known: Callable[[str], bool] | None = None
    what: str = "name"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be a {self.what} (a string), got {_short(value)}"
        if looks_like_a_place(value):
            return (
                f"is {_short(value)}, a hub id, URL or path; a saved config may only name things, never places "
                "(rebuild the model in Python to use it)"
            )
        if len(value) > self.max_length or not value.isprintable():
            return f"is not a short printable {self.what}"
        if self.known is not None and not self.known(value):
            return f"is {value!r}, not a known {self.what}"
        return None


@dataclass(frozen=True)
class Integers(Rule):
    """A list of at most ``max_items`` integers, each in ``[low, high]``."""

    low: int = 0
    high: int = MAX_WIDTH
    max_items: int = 64

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, list) or len(value) > self.max_items:
            return f"must be a list of at most {self.max_items} integers, got {_short(value)}"
        item = Integer(self.low, self.high)
        for index, element in enumerate(value):
            if (problem := item.problem(element)) is not None:
                return f"[{index}] {problem}"
        return None


@dataclass(frozen=True)
class Keys(Rule):
    """A mapping with only the declared keys, each held to its own rule (a closed record, not pass-through)."""

    rules: Mapping[str, Rule] = field(default_factory=dict)

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"must be an object, got {_short(value)}"
        for key, element in value.items():
            if key not in self.rules:
                allowed = ", ".join(sorted(self.rules)) or "none"
                return f"may not set {key!r} from a file (allowed keys: {allowed})"
            if (problem := self.rules[key].problem(element)) is not None:
                return f".{key}{_joined(problem)}"
        return None


@dataclass(frozen=True)
class Note(Rule):
    """A flat description (a teacher's name and size, what a calibration was fitted on): scalars only."""

    max_items: int = 32

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, dict) or len(value) > self.max_items:
            return f"must be an object of at most {self.max_items} plain values, got {_short(value)}"
        for key, element in value.items():
            if (problem := Text(max_length=64, what="key").problem(key)) is not None:
                return f"key {problem}"
            rule: Rule = Text(max_length=200, what="text") if isinstance(element, str) else _SCALAR
            if element is not None and (problem := rule.problem(element)) is not None:
                return f".{key}{_joined(problem)}"
        return None


@dataclass(frozen=True)
class _Scalar(Rule):
    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool):
            return None
        return Number(-1e15, 1e15).problem(value)


@dataclass(frozen=True)
class Optional(Rule):
    """``null`` or what ``rule`` accepts."""

    rule: Rule

    def problem(self, value: Any) -> str | None:
        return None if value is None else self.rule.problem(value)


@dataclass(frozen=True)
class Refused(Rule):
    """An argument no file may set (anything but ``null``)."""

    why: str

    def problem(self, value: Any) -> str | None:
        return None if value is None else f"may not be set from a file ({self.why})"


@dataclass(frozen=True)
class WeightsFile(Rule):
    """A local file a training checkpoint's frozen decoder was loaded from: a path, never a URL or hub id."""

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or len(value) > 4096 or "\0" in value:
            return f"must be the path of a local weights file, got {_short(value)}"
        return f"is {_short(value)}, a URL or hub id; name a local file" if _SCHEME.match(value) else None


_SCALAR = _Scalar()


def _joined(problem: str) -> str:
    """A nested key's problem after its name: ``.a.b is ...`` rather than ``.a .b is ...``."""
    return problem if problem.startswith((".", "[")) else " " + problem


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

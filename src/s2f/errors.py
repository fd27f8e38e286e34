"""Errors that s2f raises for bad input.

Each one carries a single line that names the offending file or value and says how to fix it;
the CLI prints that line instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "ConfigError",
    "MediaError",
    "MissingExtraError",
    "S2FError",
    "ShardFormatError",
    "WeightsError",
]


class S2FError(Exception):
    """Base class of the errors s2f raises for bad input (not for its own bugs)."""


class AudioError(S2FError, ValueError):
    """An audio input is missing, unreadable, empty or silent."""


class WeightsError(S2FError, ValueError):
    """A weights file is missing, unsafe, or does not match the model it should fill."""


class ShardFormatError(S2FError, ValueError):
    """A shard directory is missing, malformed, or written by an incompatible s2f version."""


class ConfigError(S2FError, ValueError):
    """A saved model or recipe is incomplete or inconsistent."""


class MissingExtraError(S2FError, ImportError):
    """A command or model needs an optional extra that is not installed; the message says how to install it.

    An ``ImportError`` too, so code that falls back when an optional package is missing keeps doing so.
    """


class MediaError(S2FError):
    """A video or audio clip that ``s2f prepare`` cannot use.

    ``reason`` is its reject code (see :mod:`s2f.prepare.rejects`) and ``detail`` one line about the
    file; prepare records both in ``rejects.jsonl`` and goes on with the next clip.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

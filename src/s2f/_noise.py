"""Third-party output that s2f triggers but that says nothing about s2f's work, dropped by name.

Only named messages go, so every other warning and log line still reaches the user:

- Lightning's tips that advertise its cloud products (``💡 Tip: ... litlogger``, ``... litmodels``),
  printed whenever a Trainer is built without them;
- torch's deprecation of ``LeafSpec``, warned from inside Lightning's own code
  (``lightning.pytorch.utilities._pytree``) on every loop: nothing s2f does can change it.

:func:`drop_third_party_noise` is for the command line (the whole process is s2f's);
:func:`quiet_lightning_machinery` is for a Trainer s2f builds as machinery, such as ``prepare``'s
predict loop, whose device banners are not news to anyone who asked for shards; :func:`quiet_lightning`
does the same for the rest of the process (the demo, which reports its own stages), and
:func:`drop_frozen_module_warning` drops Lightning's warning about modules s2f keeps frozen on purpose.
This module is the one place that silences Lightning.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "FOREIGN_DEPRECATIONS",
    "LIGHTNING_TIP",
    "MACHINERY_WARNINGS",
    "drop_frozen_module_warning",
    "drop_third_party_noise",
    "quiet_lightning",
    "quiet_lightning_machinery",
]

LIGHTNING_TIP = "💡 Tip:"
"""How Lightning's product tips begin."""

FOREIGN_DEPRECATIONS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)
"""Deprecations raised inside third-party code that s2f calls and cannot act on (message patterns)."""

MACHINERY_WARNINGS = (
    r"(?s).*IterableDataset. has .__len__. defined",
    r"(?s).*does not have many workers",
    r"(?s).*Couldn't infer the batch indices",
)
"""Lightning's advice about loaders, for a Trainer whose loaders s2f chose on purpose (message patterns)."""

_FROZEN_IN_EVAL = r"Found \d+ module\(s\) in eval mode at the start of training"

# Where Lightning's rank-zero info lines are logged (lightning installs one of these, by import order),
# and the packages' top loggers, whose level decides what is shown.
_RANK_ZERO_LOGGERS = tuple(
    f"{package}.utilities.rank_zero"
    for package in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
)
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


class _WithoutTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_TIP)


def drop_third_party_noise() -> None:
    """Drops Lightning's product tips and the foreign deprecations for the rest of this process (idempotent)."""
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _WithoutTips) for existing in logger.filters):
            logger.addFilter(_WithoutTips())
    for message in FOREIGN_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


def drop_frozen_module_warning() -> None:
    """Drops Lightning's warning about modules in eval mode when a fit starts, for the rest of the process.

    The frozen teacher (and decoder) of s2f's training systems stay in eval mode on purpose; Lightning
    would warn about them on every fit.
    """
    warnings.filterwarnings("ignore", message=_FROZEN_IN_EVAL)


def _lightning_loggers() -> list[logging.Logger]:
    import lightning.pytorch  # noqa: F401  (importing it sets its loggers' levels: set ours after)

    return [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]


def quiet_lightning(extra_warnings: tuple[str, ...] = MACHINERY_WARNINGS) -> None:
    """For the rest of this process: Lightning logs warnings and errors only; the foreign deprecations and
    ``extra_warnings`` (message patterns) are dropped."""
    for logger in _lightning_loggers():
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    for message in FOREIGN_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    for message in extra_warnings:
        warnings.filterwarnings("ignore", message=message)


@contextmanager
def quiet_lightning_machinery() -> Iterator[None]:
    """While it runs: Lightning logs warnings and errors only, and the foreign deprecations are dropped.

    Levels and warning filters are put back as they were afterwards.
    """
    loggers = _lightning_loggers()
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        try:
            quiet_lightning(extra_warnings=())
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)

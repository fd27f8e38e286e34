"""Third-party output that s2f triggers but that says nothing about s2f's work, dropped by name.

Only named messages go, so every other warning and log line still reaches the user:

- Lightning's tips that advertise its cloud products (``💡 Tip: ... litlogger``, ``... litmodels``),
  printed whenever a Trainer is built without them;
- torch's deprecation of ``LeafSpec``, warned from inside Lightning's own code
  (``lightning.pytorch.utilities._pytree``) on every loop: nothing s2f does can change it.

:func:`drop_third_party_noise` is for the command line (the whole process is s2f's);
:func:`quiet_lightning_machinery` is for a Trainer s2f builds as machinery, such as ``prepare``'s
predict loop, whose device banners are not news to anyone who asked for shards.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FOREIGN_DEPRECATIONS", "LIGHTNING_TIP", "drop_third_party_noise", "quiet_lightning_machinery"]

LIGHTNING_TIP = "💡 Tip:"
"""How Lightning's product tips begin."""

FOREIGN_DEPRECATIONS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)
"""Deprecations raised inside third-party code that s2f calls and cannot act on (message patterns)."""

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


@contextmanager
def quiet_lightning_machinery() -> Iterator[None]:
    """While it runs: Lightning logs warnings and errors only, and the foreign deprecations are dropped.

    Levels and warning filters are put back as they were afterwards.
    """
    import lightning.pytorch  # noqa: F401  (importing it sets its loggers' levels: set ours after)

    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for message in FOREIGN_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        try:
            for logger in loggers:
                logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)

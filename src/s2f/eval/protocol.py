"""Which data may choose and which may be reported: the rule every figure s2f publishes is held to.

Splits are by identity: ``train`` fits, ``val`` chooses (plans, calibration's adoption, checkpoints,
thresholds, a reference's hyper-parameters), ``test`` is reported and chooses nothing. For the
synthetic world, seeds are split the same way: *development* seeds (0-9) for any experiment, and
*report* seeds, drawn once and written in ``benchmarks/demo_quality.py``, that no experiment and no
choice ever reads (docs/eval.md, "The protocol").

Code that fits or selects on a split calls :func:`refuse_reported_split` first, so that choosing on the
split that will be reported is an error rather than a habit.

Example:
    >>> refuse_reported_split("val", "test", "choose the kernel width")
    >>> refuse_reported_split("test", "test", "calibrate")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    s2f.errors.ConfigError: cannot calibrate on split 'test': it is the split being reported; calibrate on ...
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["DEVELOPMENT_SEEDS", "REPORTED_SPLIT", "SELECTION_SPLIT", "refuse_reported_split"]

SELECTION_SPLIT = "val"
"""The split every choice is made on."""
REPORTED_SPLIT = "test"
"""The split that is reported, and so chooses nothing."""
DEVELOPMENT_SEEDS = tuple(range(10))
"""World seeds any experiment may run on (their test splits included, but choices read val only)."""


def refuse_reported_split(split: str, reported: str | None, what: str) -> None:
    """Raises :class:`~s2f.errors.ConfigError` when ``split`` is ``reported``: ``what`` would read the reported data.

    Args:
        split: The split about to be fitted or selected on.
        reported: The split that is (or will be) evaluated and reported; None when nothing is.
        what: What would be done on it, as a verb phrase (``"calibrate"``).
    """
    if reported is not None and split == reported:
        fit_splits = "'train' or 'val'" if reported not in ("train", "val") else "another split"
        raise ConfigError(f"cannot {what} on split {split!r}: it is the split being reported; {what} on {fit_splits}")

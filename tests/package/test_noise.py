"""Third-party noise that s2f triggers is dropped by name; every other warning and log line still shows."""

from __future__ import annotations

import logging
import warnings

import pytest

from s2f._noise import drop_third_party_noise, quiet_lightning_machinery

RANK_ZERO = "lightning.pytorch.utilities.rank_zero"


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord(RANK_ZERO, logging.INFO, __file__, 1, message, None, None)


def test_lightnings_product_tips_are_dropped_and_its_other_lines_kept() -> None:
    import lightning.pytorch  # noqa: F401  (the logger Lightning's rank-zero lines go through)

    drop_third_party_noise()
    drop_third_party_noise()  # idempotent: one filter
    logger = logging.getLogger(RANK_ZERO)
    assert len([f for f in logger.filters if type(f).__name__ == "_WithoutTips"]) == 1
    assert not logger.filter(_record("💡 Tip: For seamless cloud logging and experiment tracking, try litlogger"))
    assert logger.filter(_record("GPU available: False, used: False"))
    assert logger.filter(_record("`Trainer.fit` stopped: `max_epochs=4` reached."))


def _leaf_spec_warnings() -> list[str]:
    """What torch warns when Lightning builds a ``LeafSpec``, as Lightning does on every loop."""
    pytree = pytest.importorskip("torch.utils._pytree")
    if not hasattr(pytree, "LeafSpec"):
        pytest.skip("this torch has no LeafSpec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drop_third_party_noise()
        pytree.LeafSpec()
        warnings.warn("a warning of s2f's own", FutureWarning, stacklevel=1)
        warnings.warn("a user's code is deprecated", DeprecationWarning, stacklevel=1)
    return [str(warning.message) for warning in caught]


def test_the_pytree_deprecation_from_inside_lightning_is_dropped_and_real_warnings_kept() -> None:
    with warnings.catch_warnings(record=True) as undropped:
        warnings.simplefilter("always")
        from torch.utils._pytree import LeafSpec

        LeafSpec()
    if not any("LeafSpec" in str(w.message) for w in undropped):
        pytest.skip("this torch no longer warns about LeafSpec")
    assert _leaf_spec_warnings() == ["a warning of s2f's own", "a user's code is deprecated"]


def test_quiet_lightning_machinery_lowers_lightning_to_warnings_and_puts_everything_back() -> None:
    import lightning.pytorch  # noqa: F401

    lightning_logger = logging.getLogger("lightning.pytorch")
    before = lightning_logger.level
    filters_before = list(warnings.filters)
    with quiet_lightning_machinery(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        assert not logging.getLogger(RANK_ZERO).isEnabledFor(logging.INFO)  # device banners, tips
        assert logging.getLogger(RANK_ZERO).isEnabledFor(logging.WARNING)
        warnings.warn("the dataloader does not have many workers", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["the dataloader does not have many workers"]
    assert lightning_logger.level == before and warnings.filters == filters_before

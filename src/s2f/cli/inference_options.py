"""The inference settings as command-line options, spelled alike by ``predict``, ``serve``, ``eval`` and ``export``.

:class:`~s2f.model.inference.InferenceSettings` is the one thing those commands hand the fast path; its
fields become the options ``--inference-precision``, ``--compile`` and ``--batch-size`` of one group,
generated from the class like every other option (:class:`~s2f.cli._options.FunctionOptions`). ``s2f eval``
gets the same group from :class:`~s2f.eval.context.EvalOptions`' ``inference`` field.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._options import Flag, FunctionOptions

if TYPE_CHECKING:
    from s2f.model.inference import InferenceSettings

__all__ = ["OLD_PRECISION_FLAG", "inference_options", "inference_settings"]

OLD_PRECISION_FLAG = Flag(deprecated=("--precision",))
"""``--precision``, the old spelling of ``--inference-precision`` on ``s2f predict`` and ``s2f eval``."""


def inference_options(*, old_precision_flag: bool = False) -> FunctionOptions:
    """The options of the inference settings (``old_precision_flag``: ``--precision`` still parses, with a
    notice, where the command had it)."""
    from s2f.model.inference import InferenceSettings  # torch: only once a command runs, not for `s2f --help`

    def settings(inference: InferenceSettings) -> InferenceSettings:
        """The inference settings.

        Args:
            inference: How the encoder runs at inference.
        """
        return inference

    settings.__annotations__ = {"inference": InferenceSettings, "return": InferenceSettings}
    flags = {"inference_precision": OLD_PRECISION_FLAG} if old_precision_flag else {}
    return FunctionOptions(settings, flags=flags)


def inference_settings(options: FunctionOptions, parsed: argparse.Namespace) -> InferenceSettings:
    """The settings the command line (and its config files) gave."""
    return options.kwargs(parsed)["inference"]

"""s2f: learn the face behind a voice (Speech2Face, Oh et al., CVPR 2019).

Example:
    >>> import s2f
    >>> "s2f_cnn" in s2f.list_models("s2f_cnn*")
    True
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import decoders, encoders, teachers
from ._registry import DECODERS, ENCODERS, TEACHERS, Registry
from .audio import AudioInput, SpectrogramFrontend, Waveform, load_audio
from .errors import S2FError
from .losses import Speech2FaceLoss
from .pipeline import Prediction, Speech2Face

try:
    __version__ = version("s2f")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DECODERS",
    "ENCODERS",
    "TEACHERS",
    "AudioInput",
    "Prediction",
    "Registry",
    "S2FError",
    "SpectrogramFrontend",
    "Speech2Face",
    "Speech2FaceLoss",
    "Waveform",
    "__version__",
    "decoders",
    "encoders",
    "list_models",
    "load_audio",
    "teachers",
]


def list_models(pattern: str = "*", *, tiny: bool | None = None) -> list[str]:
    """Names of every registered encoder, teacher and decoder matching a shell-style ``pattern``."""
    return sorted(
        {*ENCODERS.list(pattern, tiny=tiny), *TEACHERS.list(pattern, tiny=tiny), *DECODERS.list(pattern, tiny=tiny)}
    )

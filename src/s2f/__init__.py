"""s2f: learn the face behind a voice (Speech2Face, Oh et al., CVPR 2019).

Example:
    >>> import s2f
    >>> "s2f_cnn" in s2f.list_models("s2f_cnn*")
    True
    >>> [(m.name, m.kind, m.embed_dim) for m in s2f.model_info("s2f_conformer*")]
    [('s2f_conformer', 'encoder', 4096), ('s2f_conformer_tiny', 'encoder', 64)]
"""

from __future__ import annotations

from typing import Any

from . import decoders, encoders, teachers
from ._compat.moved import moved_name
from ._registry import Registry
from ._version import __version__
from .audio import AudioInput, SpectrogramFrontend, Waveform, load_audio
from .decoders.face_decoder import DECODERS
from .encoders.voice_encoder import ENCODERS
from .errors import S2FError
from .model.info import ModelInfo, model_info
from .model.speech2face import Prediction, Speech2Face
from .teachers.face_teacher import TEACHERS

__all__ = [
    "DECODERS",
    "ENCODERS",
    "TEACHERS",
    "AudioInput",
    "ModelInfo",
    "Prediction",
    "Registry",
    "S2FError",
    "SpectrogramFrontend",
    "Speech2Face",
    "Waveform",
    "__version__",
    "decoders",
    "encoders",
    "list_models",
    "load_audio",
    "model_info",
    "teachers",
]


def list_models(pattern: str = "*", *, tiny: bool | None = None) -> list[str]:
    """Names of every registered encoder, teacher and decoder matching a shell-style ``pattern``.

    Plug-ins are included. :func:`model_info` gives each one's kind, parameters, embedding size
    and source package (what ``s2f models`` prints).
    """
    return sorted(
        {*ENCODERS.list(pattern, tiny=tiny), *TEACHERS.list(pattern, tiny=tiny), *DECODERS.list(pattern, tiny=tiny)}
    )


def __getattr__(name: str) -> Any:
    # Names that moved to their one documented home (s2f._compat.moved.MOVED_NAMES) answer with a warning.
    return moved_name(__name__, name)

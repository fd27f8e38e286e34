"""A saved model folder: ``config.json`` beside ``model.safetensors``, read as untrusted data.

The folder's names, format versions and the checks every saved format shares (a record not newer than
this s2f reads, files that lie inside the folder, no path to a weights file that stays behind).
:class:`~s2f.model.speech2face.Speech2Face` writes and reads it (``save_pretrained``,
``from_pretrained``); :mod:`s2f.model.decoder_folder` holds a face decoder on its own in the same shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "WEIGHTS_FILE",
    "check_format_version",
    "own_file",
    "without_weights_file",
]

MODEL_FORMAT = "s2f-model"
# Version 2 added the calibration; a model without one is still written as version 1, which every
# s2f release reads.
MODEL_FORMAT_VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def check_format_version(record: dict[str, Any], source: object, kind: str, newest: int) -> None:
    """Refuses a record written in a newer ``kind`` format than this s2f reads, naming the fix."""
    if int(record.get("version", 0)) > newest:
        raise ConfigError(
            f"{source}: saved with {kind} format v{record['version']} by s2f {record.get('s2f_version', '?')}; "
            f"this s2f reads up to v{newest}: upgrade s2f"
        )


def own_file(folder: Path, name: str, inside: Path) -> Path:
    """``folder / name`` if it is a regular file that lies in ``inside`` once links are followed.

    A shared folder could hold a link to a file of the machine it is loaded on (``model.safetensors ->
    /home/me/.ssh/...``); nothing outside the folder is opened.
    """
    path = folder / name
    if not path.is_file():
        raise ConfigError(f"{folder}: missing {name}; save models with Speech2Face.save_pretrained")
    if not path.resolve().is_relative_to(inside.resolve()):
        raise ConfigError(f"{path}: a link to a file outside the model folder; copy the file itself into the folder")
    return path


def without_weights_file(spec: dict[str, Any]) -> dict[str, Any]:
    # The weights travel beside the config; a path to the file they first came from would only
    # make loading fail on a machine that does not have it.
    init_args = {k: v for k, v in spec.get("init_args", {}).items() if k != "weights"}
    return {**spec, "init_args": init_args}

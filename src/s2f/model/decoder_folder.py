"""A trained face decoder on its own: saved as a folder (``config.json`` + ``model.safetensors``) and
loaded from that folder, from a decoder training run's ``.ckpt``, or from a saved model that has one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config.components import build_component, component_spec
from ..config.weights import load_into, read_state_dict
from ..decoders.face_decoder import FaceDecoder
from ..errors import ConfigError
from .checkpoint import read_checkpoint, strip
from .saved_folder import CONFIG_FILE, WEIGHTS_FILE, check_format_version, own_file, without_weights_file
from .schema import check_saved_decoder, read_config_file

__all__ = ["DECODER_FORMAT", "DECODER_FORMAT_VERSION", "decoder_config", "load_decoder", "save_decoder"]

DECODER_FORMAT = "s2f-decoder"
DECODER_FORMAT_VERSION = 1


def save_decoder(decoder: FaceDecoder, directory: str | os.PathLike, *, teacher: dict[str, Any] | None = None) -> Path:
    """Writes a trained face decoder on its own: ``config.json`` (class, arguments, teacher) + ``model.safetensors``.

    Args:
        decoder: The trained decoder.
        directory: Folder to write into (created if needed).
        teacher: The face network whose embeddings it decodes (``{"name": ..., "embed_dim": ...}``).
    """
    from safetensors.torch import save_file

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = decoder_config(decoder, teacher)
    state = {f"decoder.{k}": v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": DECODER_FORMAT})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def decoder_config(decoder: FaceDecoder, teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a saved decoder says about itself: format, class and arguments, the embeddings it reads."""
    return {
        "format": DECODER_FORMAT,
        "version": DECODER_FORMAT_VERSION,
        "s2f_version": __version__,
        "decoder": without_weights_file(component_spec(decoder)),
        "teacher": dict(teacher or {}),
    }


def load_decoder(path: str | os.PathLike, *, teacher: str | None = None) -> FaceDecoder:
    """Loads a trained face decoder: a ``.ckpt`` of :class:`s2f.train.FaceDecoderSystem`, a folder written by
    :func:`save_decoder`, or a saved :class:`Speech2Face` folder that has one. Never touches the network.

    Args:
        path: Where the decoder is.
        teacher: The name of the teacher whose embedding space it must decode; a decoder recorded
            as trained on another teacher's embeddings is refused.
    """
    source = Path(path).expanduser()
    if source.is_file() and source.suffix == ".ckpt":
        record, weights = read_checkpoint(source)
        check_saved_decoder(record, str(source), checkpoint=True)
    elif source.is_dir() and (source / CONFIG_FILE).is_file():
        record = read_config_file(own_file(source, CONFIG_FILE, source))
        check_saved_decoder(record, str(source / CONFIG_FILE))
        weights = read_state_dict(own_file(source, WEIGHTS_FILE, source), "face decoder")
    else:
        raise ConfigError(f"{source}: give a decoder .ckpt (s2f fit -c recipes/decoder.yaml) or a saved folder")
    if record.get("format") == DECODER_FORMAT:
        check_format_version(record, source, "decoder", DECODER_FORMAT_VERSION)
    recorded = (record.get("teacher") or {}).get("name")
    if teacher and recorded and recorded != teacher:
        raise ConfigError(
            f"{source}: this decoder was trained on {recorded!r} embeddings, but the model predicts {teacher!r} ones"
        )
    decoder = build_component(without_weights_file(record["decoder"]), FaceDecoder)
    load_into(decoder, strip(weights, "decoder."), source, f"face decoder described in {source.name}")
    return decoder.eval()

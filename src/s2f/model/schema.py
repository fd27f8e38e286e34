"""What a saved model's ``config.json`` may say, argument by argument.

A model folder is data from someone else, yet its config decides which classes are built with which
arguments, and a constructor does what its arguments say: a timm model name ``hf-hub:ORG/NAME``
fetches a config over the network, ``model_kwargs={"checkpoint_path": ...}`` opens any file. So every
value a saved config may hold is declared here with its type and bounds (numbers in range, booleans,
names from a registry or a closed set of choices), and anything else is refused with one line that
names the key: dict-valued pass-through arguments, and every string that is a path, a URL, a
``file:``/``hf-hub:`` id or holds a path separator.

The schema applies to files only (:meth:`s2f.Speech2Face.from_pretrained`, checkpoints,
:func:`s2f.model.decoder_folder.load_decoder`); a model built from one's own Python call keeps its full freedom.
s2f's own classes are declared in :data:`COMPONENT_ARGS`; a plug-in's class (or one without an
entry) is held to its constructor's type hints with generic bounds, and an argument whose type is
not a plain number, flag, name, choice or list of integers cannot come from a file. The kinds of value
and their bounds are the rules of :mod:`s2f.config.rules`.

Example:
    >>> check_saved_model({"format": "s2f-model", "encoder": {
    ...     "class_path": "s2f.encoders.timm_backbone.TimmVoiceEncoder",
    ...     "init_args": {"model_name": "hf-hub:timm/resnet18.a1_in1k"}}}, "config.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    s2f.errors.ConfigError: config.json: encoder.init_args.model_name is 'hf-hub:timm/...', a hub id, URL or path; ...
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..config.rules import (
    MAX_WIDTH,
    Choice,
    Flag,
    Integer,
    Integers,
    Keys,
    Note,
    Number,
    Optional,
    Refused,
    Rule,
    Text,
    WeightsFile,
)
from ..decoders.face_decoder import FaceDecoder
from ..encoders.voice_encoder import VoiceEncoder
from ..errors import ConfigError

__all__ = [
    "COMPONENT_ARGS",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "check_saved_component",
    "check_saved_decoder",
    "check_saved_model",
    "read_config_file",
]

# A real config.json is about 1 kB; 1 MiB leaves room for any plug-in and keeps a 100 MB file unread.
MAX_CONFIG_BYTES = 2**20
# The deepest real value is encoder.init_args.model_kwargs.drop_rate (4 levels).
MAX_DEPTH = 8


def _timm_knows(name: str) -> bool:
    # A plain architecture name only: a ".tag" names pretrained weights, a prefix names a hub.
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return False
    try:
        import timm
    except ImportError:
        return True  # the constructor then says which extra to install
    return bool(timm.is_model(name))


_CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_WIDTH = Integer(1, MAX_WIDTH)
_BINS = Integer(1, 4097)
_DECODER_WEIGHTS = Refused("the weights travel in the folder's model.safetensors")
# Image sizes are bounded more tightly: some decoders build pixel grids outside the meta device.
_IMAGE = Integer(8, 1024)
_LANDMARKS = Integer(1, 1024)

COMPONENT_ARGS: dict[str, dict[str, Rule]] = {
    "s2f.encoders.cnn.PaperCNNEncoder": {
        "channels": Integers(1, 8192, max_items=32),
        "pool_after": Integers(0, 64, max_items=32),
        "strided": Integers(0, 64, max_items=32),
        "hidden_dim": _WIDTH,
        "embed_dim": _WIDTH,
        "num_bins": _BINS,
        "kernel_size": Integer(1, 64),
    },
    "s2f.encoders.conformer.ConformerEncoder": {
        "d_model": Integer(1, 8192),
        "num_layers": Integer(1, 256),
        "num_heads": Integer(1, 256),
        "ffn_dim": _WIDTH,
        "conv_kernel_size": Integer(1, 1024),
        "subsampling_channels": Integer(1, 8192),
        "dropout": Number(0.0, 1.0),
        "pooling": Choice(("mean", "attentive")),
        "hidden_dim": Optional(_WIDTH),
        "embed_dim": _WIDTH,
        "num_bins": _BINS,
        "frequency_subsampling": Integer(1, 64),
        "band_limit_hz": Optional(Number(100.0, 8000.0)),
        "pitch_statistics": Flag(),
        "envelope_only": Flag(),
        "crop_to_band": Flag(),
    },
    "s2f.encoders.timm_backbone.TimmVoiceEncoder": {
        "model_name": Text(known=_timm_knows, what="timm architecture (timm.list_models(), without a tag)"),
        "embed_dim": _WIDTH,
        "hidden_dim": Optional(_WIDTH),
        "pool": Choice(("time", "time_freq")),
        # Training-only regularisation changes no tensor, so a model trained with it still loads; every
        # other timm argument (checkpoint_path, pretrained, pretrained_cfg_overlay...) is refused.
        "model_kwargs": Optional(Keys({"drop_rate": Number(0.0, 1.0), "drop_path_rate": Number(0.0, 1.0)})),
        "num_bins": _BINS,
    },
    "s2f.encoders.speaker_frontend.SpeakerFrontendEncoder": {
        "hidden_size": Integer(1, 4096),
        "num_layers": Integer(1, 16),
        "dvector_dim": Integer(1, 4096),
        # The pretrained front end's weights are read once, when it is first built; a saved model carries
        # them in its own file and records False, so True from a file would only read another file.
        "load_pretrained": Choice((False,)),
        "freeze_frontend": Flag(),
        "hidden_dim": Optional(_WIDTH),
        "embed_dim": _WIDTH,
        "dropout": Number(0.0, 1.0),
    },
    "s2f.decoders.linear_face.LinearFaceDecoder": {
        "embed_dim": _WIDTH,
        "components": Integer(1, 4096),
        "num_landmarks": _LANDMARKS,
        "image_size": _IMAGE,
        "border_points": Integer(0, 64),
        "flow_size": Optional(_IMAGE),
        "ridge": Number(0.0, 1e6),
        "weights": _DECODER_WEIGHTS,
    },
    "s2f.decoders.warp.WarpDecoder": {
        "embed_dim": _WIDTH,
        "hidden_dim": _WIDTH,
        "landmark_hidden_dim": _WIDTH,
        "num_landmarks": _LANDMARKS,
        "image_size": _IMAGE,
        "base_size": Integer(1, 1024),
        "base_channels": Integer(1, 8192),
        "min_channels": Integer(1, 8192),
        "border_points": Integer(0, 64),
        "flow_size": Optional(_IMAGE),
        "weights": _DECODER_WEIGHTS,
    },
}
"""s2f's own saveable classes: class path -> argument -> rule. ``tests/reliability/test_hostile_folders.py`` checks
that each entry names exactly its class's constructor arguments."""

_CALIBRATION = Keys(
    {
        "embed_dim": _WIDTH,
        "spread": Number(0.0, 1e6, positive=True),
        "fitted_on": Optional(Note()),
        "radius": Optional(Number(0.0, 1e6, positive=True)),
    }
)
_PREPROCESSING = Keys(
    {
        "clip_seconds": Number(0.1, 60.0, positive=True),
        "sample_rate": Integer(1000, 192_000),
        "n_fft": Integer(16, 8192),
        "win_length": Integer(16, 8192),
        "hop_length": Integer(1, 8192),
        "power": Number(0.0, 4.0),
    }
)
_FORMAT_FIELDS: dict[str, Rule] = {
    "version": Integer(0, 1000),
    "s2f_version": Text(max_length=40, what="version"),
    "teacher": Optional(Note()),
}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parses a saved ``config.json`` that may come from anyone, with one-line errors naming it.

    Refused: a file above :data:`MAX_CONFIG_BYTES` (read no further), bytes that are not UTF-8,
    duplicate keys (two readers could take different values), ``NaN``/``Infinity``, nesting deeper
    than :data:`MAX_DEPTH`, and anything but an object at the top.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} kB; no s2f config is, so it is not read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        config = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be an s2f config") from None
    except ValueError as exc:  # from the hooks above
        raise ConfigError(f"{path}: {exc}") from None
    if _depth(config) > MAX_DEPTH:
        raise ConfigError(f"{path}: nested deeper than {MAX_DEPTH} levels; no s2f config is")
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not an s2f config (a JSON object)")
    return config


def check_saved_model(config: Any, source: str, *, checkpoint: bool = False) -> None:
    """Holds a saved :class:`~s2f.Speech2Face` record to the schema; one :class:`ConfigError` naming the key.

    Args:
        config: The parsed record.
        source: The file it came from, for the message.
        checkpoint: The record of a training checkpoint: it may also carry ``teacher_spec`` (never
            built when loading) and name its frozen decoder's weights file, as training records it.
    """
    if not isinstance(config, dict) or config.get("format") != "s2f-model" or "encoder" not in config:
        raise ConfigError(f"{source}: not an s2f model config (no format 's2f-model' with an encoder)")
    allowed = {"format", "encoder", "decoder", "preprocessing", "calibration", *_FORMAT_FIELDS}
    if checkpoint:
        allowed.add("teacher_spec")
    _refuse_unknown(config, allowed, source, "")
    _check_fields(config, _FORMAT_FIELDS, source, "")
    _check(_PREPROCESSING, config.get("preprocessing", {}), source, "preprocessing")
    _check(Optional(_CALIBRATION), config.get("calibration"), source, "calibration")
    check_saved_component(config["encoder"], "encoder", source, VoiceEncoder)
    if config.get("decoder") is not None:
        check_saved_component(config["decoder"], "decoder", source, FaceDecoder, weights_file=checkpoint)


def check_saved_decoder(record: Any, source: str, *, checkpoint: bool = False) -> None:
    """Holds a saved face decoder's record (a folder's config.json, or with ``checkpoint`` a decoder
    checkpoint's, which may name the weights file it started from) to the schema."""
    if not isinstance(record, dict) or not record.get("decoder"):
        raise ConfigError(f"{source}: holds no face decoder (no decoder in its s2f record)")
    if record.get("format") == "s2f-model":  # a whole model's folder or run, read for its decoder
        check_saved_model(record, source, checkpoint=checkpoint)
        return
    _refuse_unknown(record, {"format", "decoder", *_FORMAT_FIELDS}, source, "")
    _check_fields(record, _FORMAT_FIELDS, source, "")
    check_saved_component(record["decoder"], "decoder", source, FaceDecoder, weights_file=checkpoint)


def check_saved_component(spec: Any, key: str, source: str, base: type, *, weights_file: bool = False) -> None:
    """Holds one ``{"class_path", "init_args"}`` record to its class's declared arguments.

    The class is imported only if its package is trusted (:func:`s2f.config.components.import_trusted`) and must
    derive from ``base``; s2f's are declared in :data:`COMPONENT_ARGS`, any other is held to its type hints.
    ``weights_file`` lets a decoder name the file its weights came from (training checkpoints do; the
    loaders strip it and read the weights from their own file).
    """
    if not isinstance(spec, dict) or set(spec) - {"class_path", "init_args"}:
        raise ConfigError(f"{source}: {key} must be an object of class_path and init_args")
    class_path = spec.get("class_path")
    if not isinstance(class_path, str) or not _CLASS_PATH.fullmatch(class_path) or len(class_path) > 200:
        raise ConfigError(f"{source}: {key}.class_path must be a dotted Python name, got {_short(class_path)}")
    init_args = spec.get("init_args", {})
    if not isinstance(init_args, dict):
        raise ConfigError(f"{source}: {key}.init_args must be an object")
    rules = _rules_for(class_path, base)
    if weights_file and "weights" in rules:
        rules = {**rules, "weights": Optional(WeightsFile())}
    _refuse_unknown(init_args, set(rules), source, f"{key}.init_args.", class_path)
    _check_fields(init_args, rules, source, f"{key}.init_args.")


def _rules_for(class_path: str, base: type) -> dict[str, Rule]:
    from ..config.components import import_trusted

    # Imported only after the package check; keyed by where the class lives, so re-exports and the
    # module paths of earlier releases (s2f._compat.moved) find the same declaration.
    cls = import_trusted(class_path, base.__name__)
    if not issubclass(cls, base):
        raise ConfigError(f"{class_path} is not a {base.__name__}; refusing to build it")
    return COMPONENT_ARGS.get(f"{cls.__module__}.{cls.__qualname__}") or _rules_from_signature(cls)


def _rules_from_signature(cls: type) -> dict[str, Rule]:
    """Generic rules from a constructor's type hints, for classes s2f does not declare (plug-ins)."""
    init: Any = cls.__init__  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # a hint that does not resolve declares nothing: its argument is refused below
        hints = {}
    rules: dict[str, Rule] = {}
    for name, parameter in inspect.signature(init).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        rules[name] = _rule_for_hint(hints.get(name, Any))
    return rules


def _rule_for_hint(hint: Any) -> Rule:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return Optional(_rule_for_hint(rest[0])) if len(rest) == 1 else Refused("its type has no declared bounds")
    if origin is Literal:
        return Choice(tuple(args))
    if hint is bool:
        return Flag()
    if hint is int:
        return Integer(-MAX_WIDTH, MAX_WIDTH)
    if hint is float:
        return Number()
    if hint is str:
        return Text()
    if origin in (list, tuple, Sequence) and args and args[0] is int:
        return Integers(-MAX_WIDTH, MAX_WIDTH)
    return Refused("its type is not a plain number, flag, name, choice or list of integers")


def _refuse_unknown(
    record: dict[str, Any], allowed: set[str], source: str, prefix: str, owner: str | None = None
) -> None:
    for name in record:
        if name not in allowed:
            whose = f"an argument of {owner}" if owner else "a field of this format"
            shown = name if name.isidentifier() and len(name) <= 80 else _short(name)
            raise ConfigError(f"{source}: {prefix}{shown} is not {whose} that a saved config may set")


def _check_fields(record: dict[str, Any], rules: Mapping[str, Rule], source: str, prefix: str) -> None:
    for name, rule in rules.items():
        if name in record:
            _check(rule, record[name], source, f"{prefix}{name}")


def _check(rule: Rule, value: Any, source: str, key: str) -> None:
    problem = rule.problem(value)
    if problem is not None:
        separator = "" if problem.startswith((".", "[")) else " "
        raise ConfigError(f"{source}: {key}{separator}{problem}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise ValueError(f"the key {_short(key)} appears twice in one object")
        record[key] = value
    return record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config may hold")


def _depth(value: Any) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

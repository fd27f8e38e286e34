"""Fast inference: the encoder in the precision the device runs fastest, channels-last, batched, optionally compiled.

:meth:`s2f.Speech2Face.predict`, ``s2f predict`` and ``s2f eval`` compute embeddings through
:class:`FastEncoder`. Training never does: the model keeps its fp32 weights, and the fast path works on
a copy of the encoder that it rebuilds whenever the weights change (new values, another device).

Everything that says how the fast path runs is one frozen :class:`InferenceSettings` (inference precision,
compiling, batch size), taken by :meth:`~s2f.Speech2Face.predict`, :meth:`~s2f.Speech2Face.embed`,
``s2f predict``, ``s2f serve``, ``s2f eval`` and ``s2f export`` alike. Its precision is called
``inference_precision``: Lightning's ``precision`` (``bf16-mixed``, ``32-true``) is how a recipe *trains*.

* **Inference precision** ``"auto"`` picks bf16 where the device runs it natively (a CPU with AVX-512 BF16 or AMX,
  a GPU with bf16 support) and fp32 elsewhere; ``"bf16"`` or ``"fp32"`` overrides. Under bf16 the
  encoder's weights are cast to bf16; encoders with layers other than convolutions, linear layers and
  batch norms also run under autocast (so their normalisations and softmaxes stay in fp32), and the
  paper CNN keeps its first block in fp32. The STFT front end and the calibration always run in fp32.
  The paper CNN's copy also takes the maximum of each pair of frames in place of its 2x1 max-pools:
  the same numbers, without ``max_pool2d``'s index bookkeeping (16x faster at batch 1 in channels-last bf16).
  The paper CNN's bf16 embeddings of speech stay within cosine 0.999 of fp32 ones (``tests/model/test_inference.py``).
* ``"int8"`` runs only from an int8 inference artefact beside a saved model (:mod:`s2f.model.inference_artefact`);
  without one the precision ``"auto"`` picks runs, and ``Prediction.inference_precision`` says so.
* **Inference artefact**: a saved folder's ``inference-fp32.onnx`` (or ``inference-int8.onnx``), written once
  by ``s2f export MODEL --inference-artefact``, runs in onnxruntime instead of this PyTorch path when it is
  valid for the weights, the versions and the host (``artefact=False``: never).
* **Channels-last** for encoders with 2-D convolutions: oneDNN's fastest layout for them.
* **Batching**: many clips go through the encoder ``batch_size`` at a time.
* **Compiling** (``compile=True``): ``torch.compile`` with weight freezing, one graph per batch size and
  input length (batches are padded up to a power of two, so a few graphs serve every batch). The first
  call of each shape takes a minute or more on a CPU; later ones measured 1.4-2.3x faster than eager
  (``benchmarks/predict_latency.py``).

Example:
    >>> import torch
    >>> from s2f import ENCODERS, Speech2Face
    >>> model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=1.0)
    >>> fast = FastEncoder(InferenceSettings(inference_precision="fp32"))
    >>> fast(model, torch.randn(3, 16_000)).shape
    torch.Size([3, 64])
    >>> fast.precision
    'fp32'
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import torch
import torch.nn as nn

from ..errors import ConfigError

__all__ = [
    "PRECISIONS",
    "FastEncoder",
    "FastPathModel",
    "InferencePrecision",
    "InferenceSettings",
    "MaxOverFramePairs",
    "bf16_supported",
    "choose_precision",
    "fast_encoder_for",
    "update_settings",
]

InferencePrecision = Literal["auto", "bf16", "fp32", "int8"]
PRECISIONS: tuple[str, ...] = get_args(InferencePrecision)
# The release that stops taking the old `precision=`/`compile=` keywords (one release of deprecation).
OLD_KEYWORDS_REMOVED_IN = "0.3.0"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# Compiled graphs one FastEncoder may keep (dynamo's default of 8 recompiles would fall back to eager).
MAX_COMPILED_SHAPES = 64
# Layers that run in bf16 without autocast's help (the paper CNN is made of these only).
BF16_SAFE = (
    nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.ZeroPad2d,
    nn.Flatten, nn.Dropout, nn.Identity,
)  # fmt: skip


@dataclass(frozen=True)
class InferenceSettings:
    """How the encoder runs at inference: precision, compiling, batch size, artefact.

    One frozen object, the one way these travel: :meth:`~s2f.Speech2Face.predict` and
    :meth:`~s2f.Speech2Face.embed` take it as ``settings=`` (a model keeps its own as ``model.inference``),
    and ``s2f predict``, ``serve``, ``eval`` and ``export`` build it from the same three options.

    Attributes:
        inference_precision: The encoder's precision at inference: 'auto' (bf16 where the device runs it
            natively), 'bf16', 'fp32', or 'int8' (from an int8 inference artefact only). Training's precision
            is Lightning's, set in a recipe.
        compile: torch.compile the encoder: the first clip of each shape takes a minute, later ones run faster.
        batch_size: Clips per encoder call.
        artefact: Run the saved model's inference artefact (inference-fp32.onnx, inference-int8.onnx) where
            it is valid for these weights and this host; false: always the PyTorch path.

    Example:
        >>> InferenceSettings(inference_precision="fp32").batch_size
        16
        >>> InferenceSettings.from_dict({"precision": "bf16", "compile": False, "batch_size": 4})
        InferenceSettings(inference_precision='bf16', compile=False, batch_size=4, artefact=True)
    """

    inference_precision: InferencePrecision = "auto"
    compile: bool = False
    batch_size: int = 16
    artefact: bool = True

    def __post_init__(self) -> None:
        if self.inference_precision not in PRECISIONS:
            raise ConfigError(
                f"unknown inference precision {self.inference_precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number of at least 1, got {self.batch_size!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile is true or false, got {self.compile!r}")
        if not isinstance(self.artefact, bool):
            raise ConfigError(f"artefact is true or false, got {self.artefact!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "inference settings") -> InferenceSettings:
        """Settings from a plain mapping: :meth:`to_dict`'s, or the ``inference_settings`` dict of s2f 0.1
        (whose ``precision`` key is ``inference_precision``)."""
        values = dict(data)
        if "precision" in values:
            if "inference_precision" in values:
                raise ConfigError(f"{source}: give inference_precision or the old precision, not both")
            values["inference_precision"] = values.pop("precision")
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"{source}: unknown inference settings {unknown}; known: {cls.field_names()}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (what :meth:`from_dict` reads back)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> InferenceSettings:
        """These settings with some changed by name; the old name ``precision`` still works, with a warning."""
        return dataclasses.replace(self, **renamed_keywords(changes, stacklevel=3))

    @classmethod
    def field_names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]


def renamed_keywords(keywords: dict[str, Any], *, stacklevel: int = 3) -> dict[str, Any]:
    """``keywords`` with the old ``precision`` renamed ``inference_precision`` (with a DeprecationWarning
    pointing ``stacklevel`` frames up)."""
    if "precision" not in keywords:
        return keywords
    warnings.warn(
        "the inference keyword precision= is now inference_precision= (InferenceSettings); the old name goes "
        f"in s2f {OLD_KEYWORDS_REMOVED_IN}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    keywords = dict(keywords)
    keywords["inference_precision"] = keywords.pop("precision")
    return keywords


def settings_with_old_keywords(
    settings: InferenceSettings | None, base: InferenceSettings, *, stacklevel: int = 3, **old: Any
) -> InferenceSettings:
    """The settings a call runs with: ``settings``, else ``base`` changed by the old per-call keywords
    (``precision=``, ``compile=``; None: not given), which still work with a DeprecationWarning (pointing
    ``stacklevel`` frames up)."""
    given = {name: value for name, value in old.items() if value is not None}
    if not given:
        return base if settings is None else settings
    if settings is not None:
        raise ConfigError(f"give settings=InferenceSettings(...) or the old {sorted(given)}, not both")
    names = ", ".join(f"{name}=" for name in given)
    warnings.warn(
        f"{names} per call is now settings=InferenceSettings(...) (precision is inference_precision); the old "
        f"keywords go in s2f {OLD_KEYWORDS_REMOVED_IN}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    if "precision" in given:
        given["inference_precision"] = given.pop("precision")
    return dataclasses.replace(base, **given)


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 natively: a CUDA GPU that says so, or a CPU with AVX-512 BF16 or AMX.

    ``S2F_NATIVE_BF16=0`` in the environment makes a CPU count as having none, so a bf16 host can run
    what an fp32-only one would (CONTRIBUTING.md: "Tests that depend on the host").
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        if os.environ.get("S2F_NATIVE_BF16") == "0":
            return False
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def choose_precision(precision: str | None, device: torch.device | str) -> tuple[str, str]:
    """The precision PyTorch runs (``"bf16"`` or ``"fp32"``) and why, for a requested one on ``device``.

    Args:
        precision: ``"auto"`` (or None), ``"bf16"``, ``"fp32"``, or ``"int8"``, which only an inference
            artefact runs: here it falls back on ``"auto"``'s choice. ``S2F_PRECISION`` in the environment
            replaces ``"auto"``.
        device: Where the encoder runs.

    Raises:
        ConfigError: An unknown precision.
    """
    requested = precision or "auto"
    if requested == "auto" and os.environ.get("S2F_PRECISION"):
        requested = os.environ["S2F_PRECISION"]
        if requested in DTYPES:
            return requested, "S2F_PRECISION"
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "int8":
        reason = "int8 runs from an int8 inference artefact only, and none is in use"
        return "bf16" if bf16_supported(device) else "fp32", reason
    if requested != "auto":
        return requested, "asked for"
    device = torch.device(device)
    if bf16_supported(device):
        return "bf16", f"auto: the {device.type.upper()} runs bf16 natively"
    return "fp32", f"auto: the {device.type.upper()} has no native bf16"


class FastPathModel(Protocol):
    """What the fast path reads and keeps on a model (a :class:`~s2f.model.speech2face.Speech2Face`, which
    calls it, so the fast path names no class of its own: no import circle)."""

    last_inference: Any  # the FastEncoder that ran last

    @property
    def encoder(self) -> nn.Module: ...
    @property
    def frontend(self) -> nn.Module: ...
    @property
    def calibration(self) -> nn.Module | None: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def training(self) -> bool: ...

    inference: InferenceSettings  # the model's own settings: what predict and embed run with by default

    @property
    def _fast_encoders(self) -> dict[tuple[Any, ...], Any]: ...
    def eval(self) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...


class FastEncoder:
    """Embeddings [B, D] of waveforms [B, N], through a fast copy of a :class:`~s2f.Speech2Face`'s encoder.

    Args:
        settings: Inference precision (see :func:`choose_precision`), compiling (``torch.compile`` with
            frozen weights, one graph per batch size and length) and batch size; None: the defaults.
        channels_last: Run 2-D convolutions channels-last; None does for encoders that have them.
        **old: The keywords of s2f 0.1 (``precision=``, ``compile=``, ``batch_size=``; or the precision as
            the first argument), with a DeprecationWarning.

    After a call, ``precision`` holds the precision that ran and ``reason`` why; ``compiled_shapes`` the
    (batch, frames) input shapes compiled so far.
    """

    def __init__(
        self, settings: InferenceSettings | None = None, *, channels_last: bool | None = None, **old: Any
    ) -> None:
        if isinstance(settings, str):  # s2f 0.1: FastEncoder("fp32")
            settings, old = None, {"precision": settings, **old}
        unknown = sorted(set(old) - {"precision", "compile", "batch_size"})
        if unknown:
            raise TypeError(f"FastEncoder() got unexpected keyword arguments: {', '.join(unknown)}")
        settings = settings_with_old_keywords(settings, InferenceSettings(), **old)
        self.settings = settings
        self.requested = settings.inference_precision
        self.compile = settings.compile
        self.channels_last = channels_last
        self.batch_size = settings.batch_size
        self.precision: str | None = None
        self.reason = ""
        self.compiled_shapes: set[tuple[int, int]] = set()
        self._key: tuple[Any, ...] | None = None
        self._encoder: nn.Module | None = None
        self._runner: Any = None
        self._uses_channels_last = False
        self._autocast = False
        self._input_dtype = torch.float32

    def describe(self) -> str:
        """One line: what ran and why, e.g. ``bf16 (auto: the CPU runs bf16 natively), channels-last, eager``."""
        if self.precision is None:
            return f"precision {self.requested} (not run yet)"
        layout = "channels-last" if self._uses_channels_last else "contiguous"
        mode = "compiled" if self.compile else "eager"
        return f"{self.precision} ({self.reason}), {layout}, {mode}"

    def prepare(self, model: FastPathModel) -> nn.Module:
        """The encoder as it will run: the model's own in fp32 eager, else a copy in the chosen precision and
        layout; rebuilt when the model's weights or device changed since the last call."""
        key = _fingerprint(model.encoder)
        if self._encoder is not None and key == self._key:
            return self._encoder
        self.precision, self.reason = choose_precision(self.requested, model.device)
        encoder: nn.Module = model.encoder
        wants_channels_last = self.channels_last
        if wants_channels_last is None:
            wants_channels_last = any(isinstance(m, nn.Conv2d) for m in encoder.modules())
        self._uses_channels_last = bool(wants_channels_last)
        if self.precision != "fp32" or self._uses_channels_last or self.compile:
            encoder = _for_inference(copy.deepcopy(encoder).to(DTYPES[self.precision]), encoder)
            if self._uses_channels_last:
                encoder = encoder.to(memory_format=torch.channels_last)
            for parameter in encoder.parameters():
                parameter.requires_grad_(False)
        encoder.eval()
        # Convolutions, linear layers and batch norms run in bf16 as they are; anything else (layer norms,
        # attention) runs under autocast, which keeps the ops that need fp32 in fp32.
        safe = all(isinstance(m, (*BF16_SAFE, MaxOverFramePairs, _Cast)) for m in _leaves(encoder))
        self._autocast = self.precision != "fp32" and not safe
        self._input_dtype = next(encoder.parameters()).dtype
        self._encoder, self._key = encoder, key
        self.compiled_shapes = set()
        self._runner = torch.compile(encoder, dynamic=False, options={"freezing": True}) if self.compile else encoder
        return encoder

    @torch.inference_mode()
    def __call__(self, model: FastPathModel, waves: torch.Tensor) -> torch.Tensor:
        """Face embeddings [B, D] (fp32, calibrated when the model is) of waveforms [B, N] on the model's device."""
        self.prepare(model)
        was_training = model.training
        model.eval()
        try:
            embeddings = torch.cat([self._encode(model.frontend(chunk)) for chunk in _chunks(waves, self.batch_size)])
        finally:
            model.train(was_training)
        return embeddings if model.calibration is None else model.calibration(embeddings)

    def _encode(self, spec: torch.Tensor) -> torch.Tensor:
        count = spec.shape[0]
        if self.compile:
            spec = _pad_batch(spec, 1 << (count - 1).bit_length())
            self.compiled_shapes.add((spec.shape[0], spec.shape[2]))
        if self._uses_channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        dtype = DTYPES[self.precision or "fp32"]
        with torch.autocast(spec.device.type, dtype=dtype, enabled=self._autocast):
            if self.compile:
                with torch._dynamo.config.patch(recompile_limit=MAX_COMPILED_SHAPES):
                    out = self._runner(spec.to(self._input_dtype))
            else:
                out = self._runner(spec.to(self._input_dtype))
        return out[:count].float()


def fast_encoder_for(model: FastPathModel, settings: InferenceSettings | None = None) -> FastEncoder:
    """The model's :class:`FastEncoder` for ``settings`` (None: the model's own, ``model.inference``), made
    on first use and kept, with its prepared encoder and compiled graphs, on the model."""
    settings = model.inference if settings is None else settings
    key = (settings.inference_precision, settings.compile)
    fast = model._fast_encoders.get(key)
    if fast is None:
        fast = model._fast_encoders[key] = FastEncoder(settings)
    fast.batch_size = settings.batch_size
    model.last_inference = fast
    return fast


def update_settings(model: FastPathModel, **changes: Any) -> None:
    """Replaces the model's settings (``model.inference``) with some changed by name (``inference_precision``,
    ``compile``, ``batch_size``; the old ``precision`` still works, with a DeprecationWarning), checked."""
    unknown = sorted(set(changes) - {"precision", *InferenceSettings.field_names()})
    if unknown:
        raise ConfigError(f"unknown inference settings {unknown}; known: {InferenceSettings.field_names()}")
    model.inference = model.inference.replace(**changes)


class MaxOverFramePairs(nn.Module):
    """The maximum of frames 2t and 2t+1 of [B, C, T, F]: ``nn.MaxPool2d((2, 1))`` for inference.

    It computes the same numbers (an odd last frame is dropped, as the pool drops it), but as one
    elementwise maximum of two strided views, where ``max_pool2d`` also writes the index of every
    maximum for a backward pass that inference never runs: at batch 1 in channels-last bf16 it took
    46 ms per pool of the paper CNN against 3 ms. Training keeps ``nn.MaxPool2d``, whose backward
    sends each gradient to one frame of a tie.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        even = x.shape[2] // 2 * 2
        return torch.maximum(x[:, :, 0:even:2], x[:, :, 1:even:2])


class _Cast(nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


def _for_inference(fast: nn.Module, original: nn.Module) -> nn.Module:
    """The paper CNN's inference copy: max-pools as :class:`MaxOverFramePairs` and, under bf16, its
    first block back in fp32 with the output cast to bf16.

    Most of bf16's error comes from the first blocks (rounding the compressed spectrogram, then the
    first activations); the first block has 2 input channels, so fp32 costs little there and lifts the
    bf16-fp32 cosine of the tiny test CNN from 0.9983 to 0.9991.
    """
    from ..encoders.cnn import PaperCNNEncoder

    if not isinstance(fast, PaperCNNEncoder) or not isinstance(original, PaperCNNEncoder):
        return fast
    for index, layer in enumerate(fast.features):
        if isinstance(layer, nn.MaxPool2d) and layer.kernel_size == (2, 1) and layer.stride == (2, 1):
            fast.features[index] = MaxOverFramePairs()
    dtype = next(fast.parameters()).dtype
    if dtype != torch.float32:
        fast.features[0] = nn.Sequential(copy.deepcopy(original.features[0]).float(), _Cast(dtype))
    return fast


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def _fingerprint(module: nn.Module) -> tuple[Any, ...]:
    """Changes when any weight or buffer of ``module`` is replaced, moved or changed in place."""
    tensors = [*module.parameters(), *module.buffers()]
    return tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)


def _chunks(waves: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, waves.shape[0], size):
        yield waves[start : start + size]


def _pad_batch(spec: torch.Tensor, size: int) -> torch.Tensor:
    """``spec`` with copies of its last item appended up to ``size`` items (their outputs are dropped)."""
    if spec.shape[0] >= size:
        return spec
    return torch.cat([spec, spec[-1:].expand(size - spec.shape[0], *spec.shape[1:])])

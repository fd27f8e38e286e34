"""Fast inference: the encoder in the precision the device runs fastest, channels-last, batched, optionally compiled.

:meth:`s2f.Speech2Face.predict`, ``s2f predict`` and ``s2f eval`` compute embeddings through
:class:`FastEncoder`. Training never does: the model keeps its fp32 weights, and the fast path works on
a copy of the encoder that it rebuilds whenever the weights change (new values, another device).

* **Precision** ``"auto"`` picks bf16 where the device runs it natively (a CPU with AVX-512 BF16 or AMX,
  a GPU with bf16 support) and fp32 elsewhere; ``"bf16"`` or ``"fp32"`` overrides. Under bf16 the
  encoder's weights are cast to bf16; encoders with layers other than convolutions, linear layers and
  batch norms also run under autocast (so their normalisations and softmaxes stay in fp32), and the
  paper CNN keeps its first block in fp32. The STFT front end and the calibration always run in fp32.
  The paper CNN's copy also takes the maximum of each pair of frames in place of its 2x1 max-pools:
  the same numbers, without ``max_pool2d``'s index bookkeeping (16x faster at batch 1 in channels-last bf16).
  The paper CNN's bf16 embeddings of speech stay within cosine 0.999 of fp32 ones (``tests/test_inference.py``).
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
    >>> fast = FastEncoder(precision="fp32")
    >>> fast(model, torch.randn(3, 16_000)).shape
    torch.Size([3, 64])
    >>> fast.precision
    'fp32'
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.nn as nn

from ..errors import ConfigError

__all__ = [
    "PRECISIONS",
    "FastEncoder",
    "FastPathModel",
    "MaxOverFramePairs",
    "bf16_supported",
    "choose_precision",
    "fast_encoder_for",
    "update_settings",
]

PRECISIONS = ("auto", "bf16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
# Compiled graphs one FastEncoder may keep (dynamo's default of 8 recompiles would fall back to eager).
MAX_COMPILED_SHAPES = 64
# Layers that run in bf16 without autocast's help (the paper CNN is made of these only).
BF16_SAFE = (
    nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.ZeroPad2d,
    nn.Flatten, nn.Dropout, nn.Identity,
)  # fmt: skip


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
    """The precision to run (``"bf16"`` or ``"fp32"``) and why, for a requested one on ``device``.

    Args:
        precision: ``"auto"`` (or None), ``"bf16"`` or ``"fp32"``. ``S2F_PRECISION`` in the environment
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
    @property
    def inference_settings(self) -> dict[str, Any]: ...
    @property
    def _fast_encoders(self) -> dict[tuple[Any, ...], Any]: ...
    def eval(self) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...


class FastEncoder:
    """Embeddings [B, D] of waveforms [B, N], through a fast copy of a :class:`~s2f.Speech2Face`'s encoder.

    Args:
        precision: ``"auto"``, ``"bf16"`` or ``"fp32"`` (see :func:`choose_precision`).
        compile: ``torch.compile`` the encoder (with frozen weights), one graph per batch size and length.
        channels_last: Run 2-D convolutions channels-last; None does for encoders that have them.
        batch_size: Clips per encoder call.

    After a call, ``precision`` holds the precision that ran and ``reason`` why; ``compiled_shapes`` the
    (batch, frames) input shapes compiled so far.
    """

    def __init__(
        self,
        precision: str | None = "auto",
        *,
        compile: bool = False,
        channels_last: bool | None = None,
        batch_size: int = 16,
    ) -> None:
        if precision not in (None, *PRECISIONS):
            raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.requested = precision or "auto"
        self.compile = compile
        self.channels_last = channels_last
        self.batch_size = batch_size
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


def fast_encoder_for(model: FastPathModel, precision: str | None = None, compile: bool | None = None) -> FastEncoder:
    """The model's :class:`FastEncoder` for these settings (None: the model's ``inference_settings``),
    made on first use and kept, with its prepared encoder and compiled graphs, on the model."""
    settings = model.inference_settings
    precision = settings["precision"] if precision is None else precision
    compile = bool(settings["compile"] if compile is None else compile)
    key = (precision, compile)
    fast = model._fast_encoders.get(key)
    if fast is None:
        fast = model._fast_encoders[key] = FastEncoder(precision, compile=compile)
    fast.batch_size = int(settings["batch_size"])
    model.last_inference = fast
    return fast


def update_settings(model: FastPathModel, **settings: Any) -> None:
    """Changes the model's ``inference_settings`` (``precision``, ``compile``, ``batch_size``), checked."""
    unknown = set(settings) - set(model.inference_settings)
    if unknown:
        raise ConfigError(f"unknown inference settings {sorted(unknown)}; known: {sorted(model.inference_settings)}")
    if settings.get("precision", "auto") not in PRECISIONS:
        raise ConfigError(f"unknown precision {settings['precision']!r}; choose one of {', '.join(PRECISIONS)}")
    if int(settings.get("batch_size", 1)) < 1:
        raise ConfigError(f"batch_size must be at least 1, got {settings['batch_size']}")
    model.inference_settings.update(settings)


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

"""The inference artefact: a saved model's voice-to-embedding graph, written once, run by onnxruntime.

``s2f export MODEL --inference-artefact fp32`` (or ``int8``; :func:`s2f.model.onnx.write_inference_artefact`)
writes ``inference-fp32.onnx`` (``inference-int8.onnx``) into a saved model folder, its weights beside it in
``inference-fp32.onnx.data``. :meth:`~s2f.Speech2Face.predict` and :meth:`~s2f.Speech2Face.embed` of a model
loaded from that folder, and so ``s2f predict``, ``s2f serve`` and ``s2f eval``, run it in place of the
PyTorch fast path (:mod:`s2f.model.inference`) when it is valid:

* **written for these weights**: its metadata holds the SHA-256 of the front end's, encoder's and
  calibration's configuration and tensors, checked once at first use and again whenever the weights change;
* **by this s2f and this onnxruntime**;
* **for this kind of host**: machine, the CPU's instruction set as PyTorch sees it, native bf16 or not.

Any other artefact (stale, foreign, unreadable) is ignored with one logged line that names the file and the
command that rewrites it; the PyTorch path runs instead. Which artefact runs:

* ``inference_precision="auto"`` (the default) or ``"fp32"``: ``inference-fp32.onnx``, where the CPU has no
  native bf16 (where it has, ``auto`` keeps PyTorch's bf16 path: no artefact has been timed against it there).
* ``"int8"``: ``inference-int8.onnx``, static int8 quantisation of the encoder's convolutions and matmuls
  (per-channel weights, activations calibrated on a few voices); opt-in.
* ``compile=True``, ``artefact=False``, or a model on a GPU: never an artefact.

The writer runs the graph on check voices and writes it only if every embedding stays within cosine 0.9999
(fp32) or 0.999 (int8) of PyTorch's fp32 one (:data:`s2f.model.onnx.MIN_COSINE`), so an encoder that
exports to something else, or loses too much in int8, keeps running in PyTorch. What agreement the paper
CNN reaches, and how fast each runs, is in ``benchmarks/README.md`` (``predict_latency.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn

from .._version import __version__
from ..errors import first_line
from .inference import FastEncoder, FastPathModel, InferenceSettings, bf16_supported, choose_precision, fast_encoder_for

__all__ = [
    "ARTEFACT_FORMAT",
    "ARTEFACT_PRECISIONS",
    "ArtefactEncoder",
    "artefact_file",
    "artefact_metadata",
    "encoder_for",
    "host_kind",
    "weights_sha256",
]

ARTEFACT_FORMAT = "s2f-inference-artefact"
ARTEFACT_PRECISIONS: tuple[str, ...] = ("fp32", "int8")
logger = logging.getLogger(__name__)


class ArtefactModel(FastPathModel, Protocol):
    """What the artefact reads on a model: the fast path's view, the folder it was loaded from, its config."""

    inference_artefact_folder: Path | None

    def config(self) -> dict[str, Any]: ...


def artefact_file(precision: str) -> str:
    """The artefact's file name in a model folder (its weights: the same name + ``.data``)."""
    return f"inference-{precision}.onnx"


def host_kind() -> dict[str, Any]:
    """What an artefact is written for: the machine, the CPU's instruction set (PyTorch's name), native bf16."""
    return {
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bf16_supported("cpu"),
    }


def describe_host(host: dict[str, Any]) -> str:
    bf16 = "native bf16" if host.get("native_bf16") else "no native bf16"
    return f"{host.get('machine')} {host.get('cpu_capability')}, {bf16}"


def weights_sha256(model: ArtefactModel) -> str:
    """SHA-256 of what the graph computes with: the front end's, encoder's and calibration's config and tensors."""
    config = model.config()
    digest = hashlib.sha256(
        json.dumps({key: config.get(key) for key in ("encoder", "preprocessing", "calibration")}, sort_keys=True)
        .encode()
    )  # fmt: skip
    for part, module in (("frontend", model.frontend), ("encoder", model.encoder), ("calibration", model.calibration)):
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{part}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # no copy
    return digest.hexdigest()


def artefact_metadata(model: ArtefactModel, precision: str, onnxruntime_version: str) -> dict[str, str]:
    """The ``s2f.artefact.*`` metadata that says what an artefact is valid for."""
    return {
        "s2f.artefact.format": ARTEFACT_FORMAT,
        "s2f.artefact.precision": precision,
        "s2f.artefact.weights_sha256": weights_sha256(model),
        "s2f.artefact.s2f_version": __version__,
        "s2f.artefact.onnxruntime_version": onnxruntime_version,
        "s2f.artefact.host": json.dumps(host_kind(), sort_keys=True),
    }


class ArtefactEncoder:
    """Embeddings [B, D] of waveforms [B, N] from a valid artefact's onnxruntime session (front end, encoder
    and calibration in one graph), ``batch_size`` clips per run. ``precision`` and :meth:`describe` say what ran."""

    def __init__(self, path: Path, session: Any, precision: str, batch_size: int) -> None:
        self.path, self.session, self.precision, self.batch_size = path, session, precision, batch_size
        self.reason = f"inference artefact {path.name}"

    def describe(self) -> str:
        """One line, e.g. ``fp32 (inference artefact inference-fp32.onnx), onnxruntime 1.30.0``."""
        import onnxruntime

        return f"{self.precision} ({self.reason}), onnxruntime {onnxruntime.__version__}"

    @torch.inference_mode()
    def __call__(self, model: FastPathModel, waves: torch.Tensor) -> torch.Tensor:
        chunks = [waves[start : start + self.batch_size] for start in range(0, waves.shape[0], self.batch_size)]
        # The graph's own names: onnx.py wrote them, and importing it here would close an import circle.
        (source,), (target,) = self.session.get_inputs(), self.session.get_outputs()
        feeds = [{source.name: chunk.detach().float().cpu().numpy()} for chunk in chunks]
        outputs = [self.session.run([target.name], feed)[0] for feed in feeds]
        return torch.cat([torch.from_numpy(out) for out in outputs]).to(waves.device)


@dataclass
class _ArtefactState:
    """One artefact's verdict on one model, kept until the model's tensors change."""

    tensors: tuple[Any, ...]
    runner: ArtefactEncoder | None


def encoder_for(model: ArtefactModel, settings: InferenceSettings | None = None) -> ArtefactEncoder | FastEncoder:
    """What runs ``model``'s encoder under ``settings`` (None: the model's own): its inference artefact when
    one applies and is valid, else the PyTorch fast path (:func:`~s2f.model.inference.fast_encoder_for`)."""
    settings = model.inference if settings is None else settings
    precision = _artefact_precision(model, settings)
    runner = None if precision is None else _valid_artefact(model, precision)
    if runner is None:
        return fast_encoder_for(model, settings)
    runner.batch_size = settings.batch_size
    model.last_inference = runner
    return runner


def _artefact_precision(model: ArtefactModel, settings: InferenceSettings) -> str | None:
    """The artefact these settings would run (None: none applies)."""
    if not settings.artefact or settings.compile or model.device.type != "cpu":
        return None
    requested = settings.inference_precision
    if requested == "auto":
        return "fp32" if choose_precision("auto", model.device)[0] == "fp32" else None
    return requested if requested in ARTEFACT_PRECISIONS else None


def _valid_artefact(model: ArtefactModel, precision: str) -> ArtefactEncoder | None:
    """The model's artefact of ``precision``, checked once per state of its tensors; None (said once) if invalid."""
    modules = [m for m in (model.frontend, model.encoder, model.calibration) if m is not None]
    tensors = tuple((t.data_ptr(), t._version, t.device, t.dtype) for m in modules for t in _tensors(m))
    key = ("artefact", precision)
    state = model._fast_encoders.get(key)
    if state is not None and state.tensors == tensors:
        return state.runner
    runner = None
    folder = model.inference_artefact_folder
    if folder is not None and (folder / artefact_file(precision)).exists():
        runner = _load(model, folder / artefact_file(precision), precision)
    elif precision == "int8":
        where = f"{folder} has no {artefact_file('int8')}" if folder else "this model was not loaded from a folder"
        logger.warning(
            f"int8 inference runs from an int8 inference artefact, and {where}; running "
            f"{choose_precision('int8', model.device)[0]} in PyTorch. Write one: s2f export MODEL_DIR "
            "--inference-artefact int8"
        )
    model._fast_encoders[key] = _ArtefactState(tensors, runner)
    return runner


def _load(model: ArtefactModel, path: Path, precision: str) -> ArtefactEncoder | None:
    fix = f"rewrite it: s2f export {path.parent} --inference-artefact {precision}"
    try:
        import onnxruntime
    except ImportError:
        logger.warning(f"{path}: ignored, onnxruntime is not installed; pip install 's2f[onnx]' to run it")
        return None
    problem, weights = _problem(path, precision, onnxruntime.__version__)
    if problem is None:
        # The weights are hashed while onnxruntime makes its session: both are needed before the first run,
        # and hashlib lets go of the GIL, so a fresh model's first call waits for the slower of the two only.
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashed = pool.submit(weights_sha256, model)
            try:
                session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime's own exception classes are not importable by name
                problem = f"onnxruntime cannot load it ({first_line(exc)})"
            if hashed.result() != weights:  # the likelier cause, and the one its fix mends
                problem = "stale: written for other weights than the model's"
        if problem is None:
            return ArtefactEncoder(path, session, precision, model.inference.batch_size)
    logger.warning(f"{path}: {problem}; ignored, the encoder runs in PyTorch; {fix}")
    return None


def _problem(path: Path, precision: str, onnxruntime_version: str) -> tuple[str | None, str]:
    """Why the artefact at ``path`` is not valid on this host (None: it may be), and the weights' SHA-256 it
    was written for (checked against the model's by the caller)."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a truncated or foreign file fails in protobuf's parser, with its own classes
        return f"unreadable ({first_line(exc)})", ""
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    weights = metadata.get("s2f.artefact.weights_sha256", "")
    if metadata.get("s2f.artefact.format") != ARTEFACT_FORMAT:
        return "not an s2f inference artefact (no s2f.artefact.format metadata)", weights
    data_file = f"{path.name}.data"
    for tensor in proto.graph.initializer:
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location")
        if location is not None and location != data_file:
            return f"its weights point at {location!r}, not at {data_file} beside it", weights
    if not (path.parent / data_file).resolve().is_relative_to(path.parent.resolve()):
        return f"{data_file} links outside the model folder", weights
    if metadata.get("s2f.artefact.precision") != precision:
        return f"holds {metadata.get('s2f.artefact.precision')}, not {precision}", weights
    written = (metadata.get("s2f.artefact.s2f_version"), metadata.get("s2f.artefact.onnxruntime_version"))
    if written != (__version__, onnxruntime_version):
        return (
            f"written by s2f {written[0]} with onnxruntime {written[1]}, this is s2f {__version__} with "
            f"onnxruntime {onnxruntime_version}"
        ), weights
    try:
        host = json.loads(metadata.get("s2f.artefact.host", "{}"))
    except json.JSONDecodeError:
        host = {}
    if host != host_kind():
        return (
            f"written for another kind of host ({describe_host(host)}; this one: {describe_host(host_kind())})",
            weights,
        )
    return None, weights


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]

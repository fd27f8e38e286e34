"""ONNX: a saved model's voice-to-embedding graph for onnxruntime, and predictions from it.

:func:`export_onnx` writes waveforms [batch, samples] -> embeddings [batch, D] (fp32): the STFT front end,
the encoder and the calibration, with the batch size and the clip length both dynamic. The face decoder
stays out: predictions from an ``.onnx`` file carry the embedding only. What the graph cannot hold (the
sample rate, the clip length, the teacher) travels in its metadata (``s2f.*`` keys).

Needs the ``onnx`` extra (onnx, onnxscript to export; onnxruntime to run): ``pip install 's2f[onnx]'``.

Example (not run: exporting takes most of a minute):
    >>> from s2f import Speech2Face                                        # doctest: +SKIP
    >>> export_onnx(Speech2Face.from_pretrained("models/s2f"), "model.onnx")  # doctest: +SKIP
    >>> OnnxSpeech2Face("model.onnx").predict("voice.wav").embedding.shape  # doctest: +SKIP
    torch.Size([4096])
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import torch
import torch.nn as nn

from ..audio import AudioInput, load_clip
from ..errors import ConfigError, first_line
from ..extras import missing_extra_error, require_extra

if TYPE_CHECKING:
    from .speech2face import Prediction, Speech2Face

__all__ = ["ONNX_FORMAT", "OnnxSpeech2Face", "export_onnx", "write_inference_artefact"]

ONNX_FORMAT = "s2f-onnx"
INPUT, OUTPUT = "waves", "embedding"
logger = logging.getLogger(__name__)
OPSET = 18  # the first with DFT taking its length as an input, which the front end's rfft needs
# The operators an int8 artefact quantises: the encoder's convolutions and matmuls. The quantiser's default
# list also takes the front end's elementwise ops, and 8 bits of the compressed STFT's |x|^0.3 turned the
# paper CNN's embeddings far from fp32 ones (tried while building this; not adopted).
INT8_OPS = ("Conv", "Gemm", "MatMul")


class _VoiceToEmbedding(nn.Module):
    """What the ONNX graph computes: :meth:`Speech2Face.forward` (front end, encoder, calibration) in fp32."""

    def __init__(self, model: Speech2Face) -> None:
        super().__init__()
        self.frontend, self.encoder, self.calibration = model.frontend, model.encoder, model.calibration

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        embedding = self.encoder(self.frontend(waves))
        return embedding if self.calibration is None else self.calibration(embedding)


def export_onnx(model: Speech2Face, path: str | os.PathLike, *, opset: int = OPSET) -> Path:
    """Writes ``model``'s waveforms -> embeddings graph to ``path`` (``.onnx``), batch and length dynamic.

    Args:
        model: The model; exported in fp32 on the CPU, in eval mode (the model itself is left as it was).
        path: The file to write.
        opset: The ONNX opset.

    Raises:
        MissingExtraError: onnx or onnxscript is not installed.
        ConfigError: The encoder does not export (the message names the failing step).
    """
    require_extra("onnx", "s2f export --onnx", modules=("onnx", "onnxscript"))
    import copy

    import onnx
    from torch.export import Dim

    graph = _VoiceToEmbedding(copy.deepcopy(model).float().cpu()).eval()
    frontend = model.frontend
    min_samples = (max(model.encoder.min_frames, 2) - 1) * frontend.hop_length + frontend.win_length
    example = torch.randn(2, max(min_samples, round(model.clip_seconds * model.sample_rate))) * 0.1
    # Up to 10 minutes of audio: export needs an upper bound; a longer clip is refused by onnxruntime.
    samples = Dim("samples", min=min_samples, max=600 * model.sample_rate)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # torch.export's first, strict capture fails on the conformer's data-dependent padding mask and prints
    # the partial graph (hundreds of lines) to stderr before the exporter's next strategy succeeds: kept
    # for the debug log rather than the user's terminal.
    capture = io.StringIO()
    try:
        with contextlib.redirect_stderr(capture):
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes={"waves": {0: Dim("batch", min=1, max=4096), 1: samples}},
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; the first line says which step failed
        raise ConfigError(f"{type(model.encoder).__name__} does not export to ONNX: {first_line(exc)}") from None
    finally:
        if capture.getvalue():
            logger.debug("torch.onnx.export wrote to stderr:\n%s", capture.getvalue())
    if program is None:
        raise ConfigError("torch.onnx.export returned no program; update torch")
    proto = program.model_proto
    metadata = {
        "s2f.format": ONNX_FORMAT,
        "s2f.config": json.dumps(model.config()),
        "s2f.sample_rate": str(model.sample_rate),
        "s2f.clip_seconds": str(model.clip_seconds),
        "s2f.embed_dim": str(model.encoder.embed_dim),
        "s2f.min_samples": str(min_samples),
    }
    for key, value in metadata.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save_model(proto, str(target))
    return target


class OnnxSpeech2Face:
    """A model exported by :func:`export_onnx`, run by onnxruntime: ``predict`` as :class:`~s2f.Speech2Face`'s,
    embeddings only.

    Args:
        path: The ``.onnx`` file.
        threads: onnxruntime's intra-op threads (None: its default, every core).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_extra_error("onnx", "running an .onnx model", ["onnxruntime"]) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such ONNX model; write one with `s2f export CKPT OUT --onnx`")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception classes are not importable by name
            raise ConfigError(f"{self.path}: onnxruntime cannot load it ({first_line(exc)})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get("s2f.format") != ONNX_FORMAT:
            raise ConfigError(f"{self.path}: not an s2f ONNX model (no s2f.format metadata); export with s2f")
        self.sample_rate = int(metadata["s2f.sample_rate"])
        self.clip_seconds = float(metadata["s2f.clip_seconds"])
        self.config: dict[str, Any] = json.loads(metadata.get("s2f.config", "{}"))
        self.teacher = self.config.get("teacher") or {}
        self.precision = "fp32"

    def embed(self, waves: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, D] of waveforms [B, N] at :attr:`sample_rate`."""
        (out,) = self.session.run([OUTPUT], {INPUT: waves.detach().float().cpu().numpy()})
        return torch.from_numpy(out)

    @overload
    def predict(self, audio: AudioInput, *, seconds: float | None = None) -> Prediction: ...
    @overload
    def predict(self, audio: list[AudioInput], *, seconds: float | None = None) -> list[Prediction]: ...

    def predict(
        self, audio: AudioInput | list[AudioInput], *, seconds: float | None = None
    ) -> Prediction | list[Prediction]:
        """The face embedding behind one voice, or behind each voice of a list."""
        from .speech2face import Prediction

        sources: list[AudioInput] = list(audio) if isinstance(audio, list) else [audio]
        length = self.clip_seconds if seconds is None else seconds
        waves = torch.stack([load_clip(source, length, self.sample_rate) for source in sources])
        predictions = [Prediction(embedding=e, inference_precision=self.precision) for e in self.embed(waves)]
        return predictions if isinstance(audio, list) else predictions[0]

    def describe(self) -> str:
        return f"fp32 (onnxruntime {self.session.get_providers()[0]})"


# The least agreement with PyTorch's fp32 embeddings (cosine, per check clip, about the calibration's mean)
# an artefact is written with: float rounding for fp32; the bar for int8.
MIN_COSINE = {"fp32": 0.9999, "int8": 0.999}


def write_inference_artefact(
    folder: str | os.PathLike,
    precision: str = "fp32",
    *,
    check_audio: Sequence[AudioInput],
    calibration_audio: Sequence[AudioInput] = (),
    min_cosine: float | None = None,
) -> tuple[Path, float]:
    """Writes the saved model in ``folder``'s inference artefact (:mod:`s2f.model.inference_artefact`):
    ``inference-PRECISION.onnx`` and its weights ``inference-PRECISION.onnx.data``, valid for these weights,
    this s2f and onnxruntime, and this kind of host; only if it agrees with PyTorch on ``check_audio``.

    Args:
        folder: A saved model folder (``Speech2Face.save_pretrained``).
        precision: ``"fp32"``, or ``"int8"``: static quantisation of the encoder's convolutions and matmuls in
            onnxruntime's QDQ format, per-channel int8 weights and uint8 activations calibrated on
            ``calibration_audio``, weights at 7 bits (``reduce_range``), which keeps CPUs without VNNI
            from saturating their int8 products (min-max ranges; the front end stays fp32).
        check_audio: Voices (paths, waveforms) the artefact's embeddings are compared on with PyTorch's fp32
            ones: a few like those it will hear, none of the calibration's.
        calibration_audio: Voices whose activation ranges the int8 graph is fitted to. Needed for int8 only.
        min_cosine: The least cosine on every check clip (embeddings taken about the calibration's mean, so
            its offset hides no disagreement); None: :data:`MIN_COSINE` of the precision.

    Returns:
        The artefact's path and its worst cosine to PyTorch fp32 over the check clips.

    Raises:
        MissingExtraError: onnx, onnxscript or onnxruntime is not installed.
        ConfigError: Not a saved model folder, an unknown precision, no clips, or an artefact that disagrees
            with PyTorch (then nothing is written).
    """
    from .inference_artefact import ARTEFACT_PRECISIONS, artefact_file, artefact_metadata
    from .speech2face import Speech2Face

    require_extra("onnx", "s2f export --inference-artefact", modules=("onnx", "onnxscript", "onnxruntime"))
    import onnxruntime

    if precision not in ARTEFACT_PRECISIONS:
        raise ConfigError(f"unknown artefact precision {precision!r}; choose one of {', '.join(ARTEFACT_PRECISIONS)}")
    if not check_audio or (precision == "int8" and not calibration_audio):
        raise ConfigError(
            "an artefact is checked on voices (check_audio), and int8 calibrated on others (calibration_audio)"
        )
    model = Speech2Face.from_pretrained(folder)
    target = Path(folder) / artefact_file(precision)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".artefact-") as scratch:
        graph = export_onnx(model, Path(scratch) / "graph.onnx")
        if precision == "int8":
            graph = _quantised(
                graph, [load_clip(source, model.clip_seconds, model.sample_rate) for source in calibration_audio]
            )
        written = _with_metadata(graph, target.name, artefact_metadata(model, precision, onnxruntime.__version__))
        agreement = _agreement(model, written, check_audio)
        floor = MIN_COSINE[precision] if min_cosine is None else min_cosine
        if agreement < floor:
            raise ConfigError(
                f"{target}: not written: its {precision} embeddings reach only cosine {agreement:.5f} to PyTorch's "
                f"fp32 on {len(check_audio)} check voices (needed: {floor}); predictions stay in PyTorch"
            )
        os.replace(written.with_name(f"{target.name}.data"), target.parent / f"{target.name}.data")
        os.replace(written, target)
    return target, agreement


def _with_metadata(graph: Path, name: str, metadata: dict[str, str]) -> Path:
    """``graph`` saved beside itself as ``name`` with ``metadata`` added, its weights in ``name``.data."""
    import onnx

    proto = onnx.load(str(graph))
    entries = {entry.key: entry.value for entry in proto.metadata_props}
    entries.update(metadata)
    del proto.metadata_props[:]
    for key, value in entries.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    # Weights in a file of their own: onnxruntime maps it, and a session of the paper CNN starts several
    # times sooner than from one 650 MB protobuf (predict_latency.py's first-call column shows what is left).
    written = graph.with_name(name)
    onnx.save_model(
        proto, str(written), save_as_external_data=True, all_tensors_to_one_file=True, location=f"{name}.data"
    )
    return written


def _agreement(model: Speech2Face, graph: Path, audio: Sequence[AudioInput]) -> float:
    """The worst cosine, over ``audio``, between ``graph``'s embeddings and PyTorch's fp32 ones, both taken
    about the calibration's mean (the point every prediction is moved onto)."""
    import onnxruntime

    from .inference import InferenceSettings

    waves = torch.stack([load_clip(source, model.clip_seconds, model.sample_rate) for source in audio])
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT], {INPUT: waves.numpy()})
    eager = model.embed(waves, settings=InferenceSettings(inference_precision="fp32", artefact=False))
    centre = model.calibration.target_mean if model.calibration is not None else torch.zeros(())
    return torch.cosine_similarity(torch.from_numpy(out) - centre, eager - centre).min().item()


def _quantised(graph: Path, clips: list[torch.Tensor]) -> Path:
    """``graph`` with its convolutions and matmuls in int8 (QDQ), activation ranges from ``clips``."""
    import numpy
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Clips(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{INPUT: clip[None].float().numpy()} for clip in clips])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.feeds, None)

    # The exporter's shapes disagree with onnx's own shape inference, which the quantiser runs; it infers them anew.
    proto = onnx.load(str(graph))
    del proto.graph.value_info[:]
    plain, quantised = graph.with_name("plain.onnx"), graph.with_name("int8.onnx")
    onnx.save_model(proto, str(plain))
    # The quantiser logs a line for every batch norm it leaves in float, and numpy warns on the all-zero
    # ranges of untrained layers: notes for its authors, not for whoever exports.
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR
    try:
        with warnings.catch_warnings(), numpy.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            quantize_static(
                str(plain), str(quantised), Clips(), quant_format=QuantFormat.QDQ, per_channel=True,
                reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=list(INT8_OPS),
            )  # fmt: skip
    finally:
        root.setLevel(level)
    return quantised

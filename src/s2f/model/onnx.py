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

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import torch
import torch.nn as nn

from ..audio import AudioInput, load_clip
from ..errors import ConfigError
from ..extras import missing_extra_error, require_extra

if TYPE_CHECKING:
    from .speech2face import Prediction, Speech2Face

__all__ = ["ONNX_FORMAT", "OnnxSpeech2Face", "export_onnx"]

ONNX_FORMAT = "s2f-onnx"
INPUT, OUTPUT = "waves", "embedding"
OPSET = 18  # the first with DFT taking its length as an input, which the front end's rfft needs


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
    try:
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
        raise ConfigError(f"{type(model.encoder).__name__} does not export to ONNX: {_first_line(exc)}") from None
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
            raise ConfigError(f"{self.path}: onnxruntime cannot load it ({_first_line(exc)})") from None
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


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__

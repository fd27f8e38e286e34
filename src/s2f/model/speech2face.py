"""``Speech2Face``: a trained model as one object that loads, saves and predicts.

A saved model is a folder holding ``config.json`` (class paths and constructor arguments of
the encoder and decoder, the preprocessing, the teacher whose embedding space it predicts, the
package version) and ``model.safetensors``. Loading a folder or a Lightning ``.ckpt`` never
touches the network; a hub repository must be asked for explicitly as ``hf-hub:ORG/NAME``.

Example:
    >>> import tempfile, torch
    >>> from s2f import ENCODERS, Speech2Face
    >>> model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=3.0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = model.save_pretrained(folder)
    ...     again = Speech2Face.from_pretrained(folder)
    >>> wave = torch.sin(torch.arange(48_000) / 10.0)
    >>> bool(torch.equal(model.predict((wave, 16_000)).embedding, again.predict((wave, 16_000)).embedding))
    True
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
import torch.nn as nn

from .._version import __version__
from ..audio import AudioInput, SpectrogramFrontend, load_clip
from ..config.components import build_component, component_spec
from ..config.weights import check_against_header, load_into, read_state_dict, refuse_nonfinite
from ..decoders.face_decoder import FaceDecoder, FaceOutput
from ..encoders.voice_encoder import VoiceEncoder
from ..errors import ConfigError
from .calibration import EmbeddingCalibration
from .card import CARD_FILE, model_card
from .checkpoint import read_checkpoint, strip
from .hub import HUB_PREFIX, download_from_hub
from .inference import OLD_KEYWORDS_REMOVED_IN, InferenceSettings, settings_with_old_keywords, update_settings
from .inference_artefact import encoder_for
from .saved_folder import (
    CONFIG_FILE,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    WEIGHTS_FILE,
    check_format_version,
    own_file,
    without_weights_file,
)
from .schema import check_saved_model, read_config_file

__all__ = ["Prediction", "Speech2Face"]


@dataclass
class Prediction:
    """What the model says about one voice.

    Attributes:
        embedding: The predicted face embedding [D], in the teacher's space.
        image: The decoded frontal face (a PIL image), when the model has a decoder.
        landmarks: The decoded face's landmarks [K, 2] in pixels, when the model has a decoder.
        inference_precision: The precision the encoder ran in (``"bf16"``, ``"fp32"``, or ``"int8"`` from an
            int8 inference artefact; :mod:`s2f.model.inference`).
    """

    embedding: torch.Tensor
    image: Any | None = None
    landmarks: torch.Tensor | None = None
    inference_precision: str | None = None

    @property
    def precision(self) -> str | None:
        """The old name of :attr:`inference_precision` (a DeprecationWarning; it goes in s2f 0.3.0)."""
        warnings.warn(
            f"Prediction.precision is now Prediction.inference_precision; the old name goes in s2f "
            f"{OLD_KEYWORDS_REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.inference_precision

    def cartoon(self, *, size: int = 256) -> str:
        """The decoded face as a flat, stylised avatar: an SVG drawn from its landmarks, in its colours
        (:func:`s2f.model.cartoon.cartoon_svg`). Deterministic: the same face gives the same SVG."""
        if self.image is None or self.landmarks is None:
            raise ConfigError("a cartoon is drawn from the decoded face; this model has no face decoder")
        from .cartoon import cartoon_svg

        return cartoon_svg(self.image, self.landmarks, size=size)


class Speech2Face(nn.Module):
    """A voice encoder (and, optionally, a face decoder) with its preprocessing.

    Args:
        encoder: The trained voice encoder.
        decoder: A face decoder for the encoder's embedding space, if any.
        clip_seconds: Length every input is cropped or loop-repeated to (the paper: 6 s).
        teacher: A description of the teacher whose space the embeddings live in (name, embed_dim).
        calibration: Where the encoder's predictions are moved to, and how far apart they are drawn
            (:mod:`s2f.model.calibration`); fit one with :func:`~s2f.eval.calibrate.calibrate_on_shards`.
    """

    def __init__(
        self,
        encoder: VoiceEncoder,
        decoder: FaceDecoder | None = None,
        *,
        clip_seconds: float = 6.0,
        teacher: dict[str, Any] | None = None,
        calibration: EmbeddingCalibration | None = None,
    ) -> None:
        super().__init__()
        if decoder is not None and decoder.embed_dim != encoder.embed_dim:
            raise ConfigError(
                f"decoder takes {decoder.embed_dim}-D embeddings but the encoder makes {encoder.embed_dim}-D"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.frontend = SpectrogramFrontend(**encoder.frontend_config())  # type: ignore[arg-type]
        self.clip_seconds = clip_seconds
        self.teacher = dict(teacher or {})
        self.calibration = calibration
        # The fast inference path (s2f.model.inference): the settings predict and embed run with unless a
        # call gives its own, and one prepared encoder per (inference precision, compile) used.
        self.inference = InferenceSettings()
        self._fast_encoders: dict[tuple[Any, ...], Any] = {}
        self.last_inference: Any = None  # the FastEncoder that ran last: .precision, .describe()
        # The saved folder the model was loaded from, where its inference artefact may lie (inference_artefact).
        self.inference_artefact_folder: Path | None = None

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- inference -----------------------------------------------------------------------------

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Face embeddings [B, D] of waveforms [B, N] at the model's sample rate."""
        embedding = self.encoder(self.frontend(waves))
        return embedding if self.calibration is None else self.calibration(embedding)

    def draw(self, embeddings: torch.Tensor) -> FaceOutput:
        """The faces of predicted embeddings [B, D]: scaled to real faces' spread by the calibration, if
        any, then decoded. For a teacher's embedding of a real face, call the ``decoder`` itself."""
        if self.decoder is None:
            raise ConfigError("this model has no face decoder; attach one: s2f export CKPT OUT --decoder DECODER")
        if self.calibration is not None:
            embeddings = self.calibration.for_drawing(embeddings)
        return self.decoder(embeddings)

    def embed(
        self,
        waves: torch.Tensor,
        *,
        settings: InferenceSettings | None = None,
        precision: str | None = None,
        compile: bool | None = None,
    ) -> torch.Tensor:
        """Face embeddings [B, D] (fp32) of waveforms [B, N], through the fast inference path: the encoder
        in bf16 where the device runs it natively, channels-last, in batches (:mod:`s2f.model.inference`).

        Args:
            waves: Waveforms at the model's sample rate.
            settings: Inference precision, compiling and batch size; None: the model's own (``inference``).
            precision: The old per-call ``settings.inference_precision`` (a DeprecationWarning).
            compile: The old per-call ``settings.compile`` (a DeprecationWarning).
        """
        settings = settings_with_old_keywords(settings, self.inference, precision=precision, compile=compile)
        return encoder_for(self, settings)(self, waves.to(self.device))

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compiles the fast inference path of :meth:`predict` and :meth:`embed` (``torch.compile`` with frozen
        weights, one graph per batch size and input length, made on first use); keyword arguments change
        the model's other :class:`~s2f.model.inference.InferenceSettings` (``inference_precision``,
        ``batch_size``). Training is unaffected: ``forward`` stays eager."""
        if args:
            raise ConfigError("Speech2Face.compile takes keywords only (inference_precision=, batch_size=); for "
                              "training, torch.compile(model)")  # fmt: skip
        update_settings(self, compile=True, **kwargs)

    @property
    def inference_settings(self) -> MutableMapping[str, Any]:
        """The old dict of :attr:`inference` (``precision``, ``compile``, ``batch_size``): reading and writing
        it still work, with a DeprecationWarning; it goes in s2f 0.3.0."""
        warnings.warn(
            "Speech2Face.inference_settings is now Speech2Face.inference, an InferenceSettings (precision is "
            f"inference_precision); the old dict goes in s2f {OLD_KEYWORDS_REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return _OldSettingsDict(self)

    @overload
    def predict(
        self, audio: AudioInput, *, seconds: float | None = None, settings: InferenceSettings | None = None,
        precision: str | None = None, compile: bool | None = None,
    ) -> Prediction: ...  # fmt: skip
    @overload
    def predict(
        self, audio: list[AudioInput], *, seconds: float | None = None, settings: InferenceSettings | None = None,
        precision: str | None = None, compile: bool | None = None,
    ) -> list[Prediction]: ...  # fmt: skip

    @torch.inference_mode()
    def predict(
        self,
        audio: AudioInput | list[AudioInput],
        *,
        seconds: float | None = None,
        settings: InferenceSettings | None = None,
        precision: str | None = None,
        compile: bool | None = None,
    ) -> Prediction | list[Prediction]:
        """Predicts the face behind one voice, or behind each voice of a list (batched).

        Args:
            audio: A path, file object, :class:`~s2f.audio.Waveform` or ``(samples, rate)``; or a list of them.
            seconds: Clip length to use instead of the model's (the paper evaluates 3 s and 6 s).
            settings: Inference precision (``"auto"``: bf16 where the device runs it natively), compiling and
                batch size; None: the model's own (``inference``). ``Prediction.inference_precision`` says
                which precision ran.
            precision: The old per-call ``settings.inference_precision`` (a DeprecationWarning).
            compile: The old per-call ``settings.compile`` (a DeprecationWarning).
        """
        # stacklevel 4: the warning names the caller's line, above inference_mode's wrapper.
        settings = settings_with_old_keywords(
            settings, self.inference, stacklevel=4, precision=precision, compile=compile
        )
        sources: list[AudioInput] = list(audio) if isinstance(audio, list) else [audio]
        length = self.clip_seconds if seconds is None else seconds
        waves = torch.stack([load_clip(source, length, self.sample_rate) for source in sources])
        was_training = self.training
        self.eval()
        try:
            fast = encoder_for(self, settings)
            embeddings = fast(self, waves.to(self.device)).cpu()
            predictions = [Prediction(embedding=e, inference_precision=fast.precision) for e in embeddings]
            if self.decoder is not None:
                faces = self.draw(embeddings.to(self.device))
                for prediction, image, landmarks in zip(predictions, faces.image, faces.landmarks, strict=True):
                    prediction.image = _to_pil(image)
                    prediction.landmarks = landmarks.float().cpu()
        finally:
            self.train(was_training)
        return predictions if isinstance(audio, list) else predictions[0]

    # -- saving and loading --------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model, as JSON-ready values."""
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_FORMAT_VERSION if self.calibration is not None else 1,
            "s2f_version": __version__,
            "encoder": component_spec(self.encoder),
            "decoder": None if self.decoder is None else component_spec(self.decoder),
            "teacher": self.teacher,
            "preprocessing": {"clip_seconds": self.clip_seconds, **self.encoder.frontend_config()},
            "calibration": None if self.calibration is None else self.calibration.config(),
        }

    def save_pretrained(
        self,
        directory: str | os.PathLike,
        *,
        evaluation: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> Path:
        """Writes ``config.json``, ``model.safetensors`` and the model card ``README.md`` into ``directory``
        (created if needed).

        Args:
            directory: The folder.
            evaluation: An ``s2f eval`` result (its ``metrics.json``) for the card's figures.
            training: What the model was trained on and how (``data``, ``recipe``), for the card.
        """
        from safetensors.torch import save_file

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        config = self.config()
        if config["decoder"] is not None:
            config["decoder"] = without_weights_file(config["decoder"])
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": MODEL_FORMAT})
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (folder / CARD_FILE).write_text(model_card(self, evaluation=evaluation, training=training), encoding="utf-8")
        return folder

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "config") -> Speech2Face:
        """Builds an untrained model from a :meth:`config` record."""
        if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT or "encoder" not in config:
            raise ConfigError(f"{source}: not an s2f model config (no format {MODEL_FORMAT!r} with an encoder)")
        check_format_version(config, source, "model", MODEL_FORMAT_VERSION)
        encoder = build_component(config["encoder"], VoiceEncoder)
        decoder = build_component(config["decoder"], FaceDecoder) if config.get("decoder") else None
        seconds = float(config.get("preprocessing", {}).get("clip_seconds", 6.0))
        calibration = config.get("calibration")
        if calibration is not None:
            try:
                calibration = EmbeddingCalibration(**calibration)
            except TypeError as exc:
                raise ConfigError(f"{source}: unreadable calibration record ({exc})") from None
        return cls(encoder, decoder, clip_seconds=seconds, teacher=config.get("teacher"), calibration=calibration)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> Speech2Face:
        """Loads a saved folder, a Lightning ``.ckpt`` of a Speech2Face training run, or ``hf-hub:ORG/NAME``.

        Local paths never touch the network; only the explicit ``hf-hub:`` prefix downloads. A folder is
        read as untrusted data: its config is held to :mod:`s2f.model.schema` (no hub ids, URLs, paths or
        pass-through arguments), its files must lie inside it, and its weights must be finite.
        """
        text = os.fspath(path)
        hub = text.startswith(HUB_PREFIX)
        folder = download_from_hub(text[len(HUB_PREFIX) :]) if hub else Path(text).expanduser()
        if folder.is_file() and folder.suffix == ".ckpt":
            model = cls.from_checkpoint(folder)
        elif folder.is_dir():
            # The hub's cache links a snapshot's files to blobs two folders up; they are its own files.
            model = cls._from_folder(folder, inside=folder.parent.parent if hub else folder)
            model.inference_artefact_folder = folder
        elif folder.exists():
            raise ConfigError(f"{folder}: give a saved model folder (config.json + model.safetensors) or a .ckpt file")
        else:
            raise ConfigError(f"{folder}: no such model folder or checkpoint; check the path (hub ids need 'hf-hub:')")
        return model.to(device).eval()

    @classmethod
    def _from_folder(cls, folder: Path, *, inside: Path) -> Speech2Face:
        config_path = own_file(folder, CONFIG_FILE, inside)
        weights_path = own_file(folder, WEIGHTS_FILE, inside)
        config = read_config_file(config_path)
        check_saved_model(config, str(config_path))
        # Its sizes are checked against the weights file on the meta device (no memory) before the real
        # model is allocated.
        with torch.device("meta"):
            skeleton = cls.from_config(config, str(config_path))
        check_against_header(skeleton, weights_path, "s2f model described by config.json")
        model = cls.from_config(config, str(config_path))
        state = read_state_dict(weights_path, "s2f model")
        refuse_nonfinite(state, weights_path, "s2f model")
        load_into(model, state, weights_path, "s2f model described by config.json")
        return model

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, decoder: FaceDecoder | None = None) -> Speech2Face:
        """Rebuilds the model from a Lightning checkpoint written by :class:`s2f.train.Speech2FaceSystem`.

        The checkpoint is read with ``weights_only=True``: it may hold tensors and plain values only.

        Args:
            path: The ``.ckpt`` file.
            decoder: A trained face decoder to attach (see :func:`~s2f.model.decoder_folder.load_decoder`),
                replacing the one the run was configured with, if any. Without it, a decoder the run had is
                rebuilt from its own weights file, since training leaves the frozen decoder out of checkpoints.
        """
        path = Path(path)
        record, weights = read_checkpoint(path)
        if not isinstance(record, dict):
            raise ConfigError(f"{path}: not a checkpoint of an s2f training run (no 's2f' record)")
        check_saved_model(record, str(path), checkpoint=True)
        record = dict(record)
        if decoder is not None:
            record["decoder"] = None
        has_decoder = any(k.startswith("decoder.") for k in weights)
        spec = record.get("decoder")
        if spec and not has_decoder and not spec.get("init_args", {}).get("weights"):
            raise ConfigError(
                f"{path}: the run's face decoder was frozen and left out of the checkpoint, and its config names "
                "no weights file; attach the trained decoder: `s2f export CKPT OUT --decoder DECODER`"
            )
        model = cls.from_config(record, str(path))
        load_into(model.encoder, strip(weights, "encoder."), path, "voice encoder recorded in the checkpoint")
        # Without decoder weights in the checkpoint, the decoder was just rebuilt from its own weights file.
        if model.decoder is not None and has_decoder:
            load_into(model.decoder, strip(weights, "decoder."), path, "face decoder recorded in the checkpoint")
        return model if decoder is None else model.with_decoder(decoder)

    def with_decoder(self, decoder: FaceDecoder) -> Speech2Face:
        """This model's encoder with ``decoder`` attached (or replacing its own): predictions gain an image.

        The decoder must read the encoder's embedding space: same size, and trained on the same
        teacher's embeddings (see :func:`~s2f.model.decoder_folder.load_decoder`'s ``teacher`` check).
        """
        return type(self)(
            self.encoder, decoder, clip_seconds=self.clip_seconds, teacher=self.teacher, calibration=self.calibration
        )


def _to_pil(image: torch.Tensor) -> Any:
    from PIL import Image

    pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels)


class _OldSettingsDict(MutableMapping[str, Any]):
    """The dict ``Speech2Face.inference_settings`` was in s2f 0.1, over the model's :class:`InferenceSettings`:
    writing a key replaces the model's settings."""

    def __init__(self, model: Speech2Face) -> None:
        self._model = model

    def _as_dict(self) -> dict[str, Any]:
        values = self._model.inference.to_dict()
        values.pop("artefact")  # newer than the old dict, which keeps s2f 0.1's three keys
        return {"precision": values.pop("inference_precision"), **values}

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        name = "inference_precision" if key == "precision" else key
        update_settings(self._model, **{name: value})

    def __delitem__(self, key: str) -> None:
        raise ConfigError("inference settings cannot be removed, only changed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())

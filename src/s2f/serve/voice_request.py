"""One request of ``s2f serve``: an uploaded or recorded file in, everything the page shows out.

Kept apart from the web framework so that it can be tested and timed on its own. Every way an
input can be wrong ends in a :class:`VoiceRequestError` with one line for the page; the checks that
cost nothing (size, length from the file's header) run before anything is decoded, so a 1-hour file
or a 200 MB upload is refused without being read. A header can lie, so decoding does not trust it
either: only the model's clip and a second more are ever decoded (:func:`s2f.audio.load_clip`).
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from s2f.audio import load_clip
from s2f.errors import S2FError

if TYPE_CHECKING:
    from s2f.model.inference import InferenceSettings
    from s2f.model.speech2face import Prediction, Speech2Face

    from .gallery import Gallery, Neighbour

__all__ = ["Answer", "FaceService", "Limits", "VoiceRequestError", "probe_seconds"]


MEGABYTE = 2**20  # as the web server counts its upload limit


class VoiceRequestError(S2FError, ValueError):
    """An input the page cannot turn into a face; the message is one line for the person who sent it."""


@dataclass(frozen=True)
class Limits:
    """What one request may be: the upload's size, and the recording's length.

    Attributes:
        max_upload_mb: Largest file accepted, in megabytes (the web server refuses bigger uploads too).
        max_seconds: Longest recording accepted; the model hears only its first ``clip_seconds`` anyway.
        min_seconds: Shortest recording accepted: a shorter one, looped to the clip length, is mostly
            the same syllable repeated.
    """

    max_upload_mb: float = 50.0
    max_seconds: float = 600.0
    min_seconds: float = 1.0


@dataclass
class Answer:
    """What the page shows for one voice."""

    prediction: Prediction
    cartoon: str
    neighbours: list[Neighbour]
    random_similarity: float | None
    gallery_size: int
    angle_to_mean_deg: float | None
    spectrogram_png: str
    seconds: float
    clip_seconds: float


class FaceService:
    """The model, the gallery and the limits: answers one file at a time.

    Args:
        model: A model with a face decoder.
        gallery: The faces to compare predictions with, if any.
        limits: What a request may be.
        top_k: How many nearest gallery faces to show.
        inference: How the encoder runs (inference precision, compiling, batch size); None: the model's own.
    """

    def __init__(
        self,
        model: Speech2Face,
        gallery: Gallery | None,
        limits: Limits,
        top_k: int = 5,
        inference: InferenceSettings | None = None,
    ) -> None:
        if model.decoder is None:
            raise S2FError("s2f serve draws faces: give a model with a face decoder (s2f export CKPT OUT --decoder D)")
        self.model = model.eval()
        self.gallery = gallery
        self.limits = limits
        self.top_k = top_k
        self.inference = inference

    def answer(self, path: str | os.PathLike) -> Answer:
        """The face, cartoon, nearest faces and spectrogram behind the voice in ``path``.

        Raises:
            VoiceRequestError: One line saying what is wrong with the input.
        """
        seconds = self.check(path)
        try:
            # What the model hears and a margin, as `s2f predict` decodes, whatever the header said
            # about the length: a file that understates it costs no more than an honest one.
            clip = load_clip(path, self.model.clip_seconds, self.model.sample_rate)
        except S2FError as exc:
            raise VoiceRequestError(_without_path(str(exc), path)) from None
        prediction = self.model.predict((clip, self.model.sample_rate), settings=self.inference)
        neighbours, random_similarity = (
            self.gallery.nearest(prediction.embedding, self.top_k) if self.gallery else ([], None)
        )
        return Answer(
            prediction=prediction,
            cartoon=prediction.cartoon(),
            neighbours=neighbours,
            random_similarity=random_similarity,
            gallery_size=len(self.gallery) if self.gallery else 0,
            angle_to_mean_deg=self._angle_to_mean(prediction.embedding),
            spectrogram_png=self._spectrogram(clip),
            seconds=seconds,
            clip_seconds=self.model.clip_seconds,
        )

    def check(self, path: str | os.PathLike) -> float:
        """The recording's length in seconds, once its size and length are within the limits."""
        size = Path(path).stat().st_size
        if size == 0:
            raise VoiceRequestError("the file is empty (0 bytes); record or upload a clip with speech in it")
        if size > self.limits.max_upload_mb * MEGABYTE:
            raise VoiceRequestError(
                f"the file is {size / MEGABYTE:.0f} MB; the limit is {self.limits.max_upload_mb:g} MB: "
                "upload a shorter clip"
            )
        seconds = probe_seconds(path)
        if seconds == 0:
            raise VoiceRequestError("the file holds no audio (0 s); record or upload a clip with speech in it")
        if seconds < self.limits.min_seconds:
            raise VoiceRequestError(
                f"the clip is {seconds:.1f} s long; speak for at least {self.limits.min_seconds:g} s "
                f"(the model hears {self.model.clip_seconds:g} s, looping shorter clips)"
            )
        if seconds > self.limits.max_seconds:
            raise VoiceRequestError(
                f"the clip is {seconds / 60:.0f} min long; the limit is {self.limits.max_seconds / 60:g} min "
                f"(the model hears only the first {self.model.clip_seconds:g} s): trim it"
            )
        return seconds

    def _angle_to_mean(self, embedding: torch.Tensor) -> float | None:
        calibration = self.model.calibration
        if calibration is not None and bool(calibration.target_mean.abs().sum() > 0):
            mean = calibration.target_mean.float().cpu()
        elif self.gallery is not None:
            mean = self.gallery.mean
        else:
            return None
        cosine = torch.nn.functional.cosine_similarity(embedding.float(), mean, dim=0).clamp(-1, 1)
        return math.degrees(math.acos(float(cosine)))

    @torch.inference_mode()
    def _spectrogram(self, clip: torch.Tensor) -> str:
        """The compressed spectrogram the encoder saw, as a PNG data URI (time left to right, low pitch at the
        bottom, brighter where louder)."""
        from PIL import Image

        spectrum = self.model.frontend(clip[None].to(self.model.device))[0].float().cpu()  # [2, T, F]
        magnitude = spectrum.pow(2).sum(0).sqrt().T.flip(0)  # [F, T]
        # Shown in decibels over a 60 dB range: on a linear scale one loud harmonic hides everything else.
        level = 20 * torch.log10(magnitude.clamp_min(1e-8))
        level = ((level - level.max() + 60).clamp(0, 60) / 60 * 255).round().to(torch.uint8)
        scaled = level.numpy()
        image = Image.fromarray(scaled).resize((600, 160))
        return _png_data_uri(image)


def probe_seconds(path: str | os.PathLike) -> float:
    """The recording's length, read from the file's header without decoding its audio.

    Raises:
        VoiceRequestError: When the file is not audio that libsndfile or FFmpeg can read, or its
            length cannot be told without decoding all of it.
    """
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
        return float(info.frames) / float(info.samplerate)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass  # mp3, m4a, mp4, webm: FFmpeg reads their headers
    import av

    try:
        with av.open(os.fspath(path), mode="r") as container:
            if not container.streams.audio:
                raise VoiceRequestError("the file has no sound track; upload wav, flac, mp3, m4a or mp4 with speech")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1e6
    except (av.error.FFmpegError, OSError, ValueError):
        raise VoiceRequestError("this is not an audio file s2f can read; upload wav, flac, mp3, m4a or mp4") from None
    raise VoiceRequestError("the file does not say how long it is; convert it to wav or flac and upload that")


def _without_path(message: str, path: str | os.PathLike) -> str:
    # The temporary file's name means nothing to the person who uploaded it.
    return message.replace(f"{os.fspath(path)}: ", "").replace(os.fspath(path), "the file").splitlines()[0]


def _png_data_uri(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

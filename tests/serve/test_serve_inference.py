"""``s2f serve`` hands the fast path the inference settings it was given, and leaves the model's own alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

from s2f import DECODERS, ENCODERS, Speech2Face
from s2f.model.inference import InferenceSettings
from s2f.serve import FaceService, Limits
from s2f.synth.sample_videos import speech


@pytest.mark.parametrize("inference_precision", ["fp32", "bf16"])
def test_the_service_runs_the_encoder_with_its_inference_settings(inference_precision: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    decoder = DECODERS.create("linear_face_decoder_tiny")
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), decoder, clip_seconds=2.0)
    voice = tmp_path / "voice.wav"
    sf.write(voice, speech(2.0, seed=1), 16_000, subtype="PCM_16")
    settings = InferenceSettings(inference_precision=inference_precision, batch_size=1)  # type: ignore[arg-type]

    answer = FaceService(model, None, Limits(), inference=settings).answer(voice)

    assert answer.prediction.inference_precision == inference_precision
    assert model.last_inference.batch_size == 1
    assert model.inference == InferenceSettings()  # the service's settings are its own, not the model's
    unset = FaceService(model, None, Limits()).answer(voice)  # no settings: the model's own (auto)
    assert unset.prediction.inference_precision == model.last_inference.precision
    assert model.last_inference.batch_size == 16

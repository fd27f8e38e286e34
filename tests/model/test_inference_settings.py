"""Inference precision's own name and one channel (s2f.model.inference.InferenceSettings): the settings object
runs what it says, and every door of s2f 0.1 (``precision=``, ``compile=``, ``inference_settings``,
``Prediction.precision``, ``evaluate(precision=)``) still leads to the same place, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from s2f import ENCODERS, Speech2Face
from s2f.errors import ConfigError
from s2f.eval.context import EvalOptions
from s2f.model.inference import FastEncoder, InferenceSettings
from s2f.synth.sample_videos import speech

LEGACY_MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "model"
FP32, BF16 = InferenceSettings(inference_precision="fp32"), InferenceSettings(inference_precision="bf16")


@pytest.fixture(scope="module")
def model() -> Speech2Face:
    torch.manual_seed(0)
    return Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=1.0).eval()


def _clip(seed: int = 0) -> tuple[torch.Tensor, int]:
    return torch.from_numpy(speech(1.0, seed=seed)), 16_000


def test_the_settings_are_checked_frozen_and_read_back() -> None:
    settings = InferenceSettings(inference_precision="bf16", compile=True, batch_size=4)
    with pytest.raises(AttributeError):
        settings.batch_size = 8  # type: ignore[misc]
    assert InferenceSettings.from_dict(settings.to_dict()) == settings
    for bad, match in (
        ({"inference_precision": "fp16"}, "unknown inference precision 'fp16'; choose one of auto, bf16, fp32, int8"),
        ({"batch_size": 0}, "batch_size must be a whole number of at least 1"),
        ({"batch_size": 2.5}, "batch_size must be a whole number"),
        ({"compile": "yes"}, "compile is true or false"),
    ):
        with pytest.raises(ConfigError, match=match):
            InferenceSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown inference settings \\['channels'\\]"):
        InferenceSettings.from_dict({"channels": "last"})


def test_the_settings_dict_of_01_reads_as_settings() -> None:
    # What Speech2Face.inference_settings held in s2f 0.1: "precision" is the inference precision.
    old = {"precision": "fp32", "compile": False, "batch_size": 16}
    assert InferenceSettings.from_dict(old) == FP32
    with pytest.raises(ConfigError, match="not both"):
        InferenceSettings.from_dict({**old, "inference_precision": "bf16"})


def test_the_settings_decide_what_runs_and_the_model_keeps_its_own(model: Speech2Face) -> None:
    waves = torch.stack([_clip(seed)[0] for seed in range(3)])
    fp32 = model.embed(waves, settings=FP32)
    assert model.last_inference.precision == "fp32"
    bf16 = model.embed(waves, settings=BF16.replace(batch_size=2))
    assert (model.last_inference.precision, model.last_inference.batch_size) == ("bf16", 2)
    assert not torch.equal(fp32, bf16) and torch.cosine_similarity(fp32, bf16).min() > 0.99
    assert model.inference == InferenceSettings()  # a call's settings change nothing on the model
    model.inference = FP32
    try:
        assert model.predict(_clip()).inference_precision == "fp32"  # no settings: the model's own
        assert model.predict(_clip(), settings=BF16).inference_precision == "bf16"
    finally:
        model.inference = InferenceSettings()


def test_the_old_keywords_warn_and_run_the_same(model: Speech2Face) -> None:
    clip = _clip()
    new = model.predict(clip, settings=FP32)
    with pytest.warns(DeprecationWarning, match="settings=InferenceSettings") as caught:
        old = model.predict(clip, precision="fp32")
    assert caught[0].filename == __file__  # the warning points at the caller's line
    torch.testing.assert_close(old.embedding, new.embedding, rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match="Prediction.precision is now Prediction.inference_precision"):
        assert old.precision == "fp32"
    with pytest.warns(DeprecationWarning, match="precision=, compile="):
        model.embed(clip[0][None], precision="fp32", compile=False)
    with pytest.raises(ConfigError, match="not both"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.predict(clip, settings=FP32, precision="bf16")
    with pytest.warns(DeprecationWarning, match="inference_precision"):
        assert FastEncoder("fp32").requested == "fp32"
    with pytest.warns(DeprecationWarning, match="inference_precision"):
        assert FastEncoder(precision="bf16", batch_size=3).settings == BF16.replace(batch_size=3)


def test_the_old_settings_dict_reads_and_writes_the_models_settings(model: Speech2Face) -> None:
    with pytest.warns(DeprecationWarning, match="inference_settings is now Speech2Face.inference"):
        old = model.inference_settings
    assert dict(old) == {"precision": "auto", "compile": False, "batch_size": 16}
    try:
        old["batch_size"] = 2
        old["precision"] = "fp32"
        assert model.inference == FP32.replace(batch_size=2)
        with pytest.raises(ConfigError, match="unknown inference precision"):
            old["precision"] = "fp8"
    finally:
        model.inference = InferenceSettings()
    with pytest.warns(DeprecationWarning, match="inference_precision"):
        model.compile(precision="fp32")
    assert model.inference == FP32.replace(compile=True)
    model.inference = InferenceSettings()


def test_evaluates_old_precision_keyword_becomes_the_inference_settings() -> None:
    with pytest.warns(DeprecationWarning, match="precision= is now inference_precision="):
        options = EvalOptions(seed=2).with_keywords(precision="fp32", gallery_size=20)
    assert (options.inference, options.seed, options.protocols.gallery_size) == (FP32, 2, 20)
    with pytest.raises(ConfigError, match="unknown inference precision"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        EvalOptions().with_keywords(precision="fp16")


def test_a_model_saved_by_01_predicts_with_the_settings_and_the_old_keyword_alike() -> None:
    model = Speech2Face.from_pretrained(LEGACY_MODEL)
    assert model.inference == InferenceSettings()  # nothing about inference is saved in a model folder
    clip = _clip(seed=4)
    new = model.predict(clip, settings=FP32)
    with pytest.warns(DeprecationWarning):
        old = model.predict(clip, precision="fp32")
    assert new.inference_precision == "fp32" and torch.equal(new.embedding, old.embedding)

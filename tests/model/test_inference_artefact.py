"""The inference artefact (s2f.model.inference_artefact, written by s2f.model.onnx.write_inference_artefact): written
once beside a saved model, run by predict and embed when valid, ignored with one line when stale, foreign or
unreadable."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from s2f import ENCODERS, Speech2Face
from s2f.cli import main
from s2f.model.calibration import EmbeddingCalibration
from s2f.model.inference import InferenceSettings, bf16_supported
from s2f.model.inference_artefact import artefact_file, artefact_metadata, host_kind
from s2f.synth.sample_videos import speech

# onnxruntime's kernels against PyTorch's: `nox -s hosts` runs this file again under other instruction sets.
pytestmark = pytest.mark.host_sensitive

SECONDS = 2.0
FP32_EAGER = InferenceSettings(inference_precision="fp32", artefact=False)
FP32, INT8 = InferenceSettings(inference_precision="fp32"), InferenceSettings(inference_precision="int8")
# The stated tolerance of the fp32 artefact against PyTorch's fp32: float rounding (as the ONNX export's:
# elements within 1 % of the largest, which the front end's |x|^0.3 of near-zero STFT bins allows), and the
# cosine the writer demands on every check voice (s2f.model.onnx.MIN_COSINE). Cosines are taken about the
# calibration's mean, so that its offset hides no disagreement.
FP32_COSINE = 0.9999
LOGGER = "s2f.model.inference_artefact"


def _speech_model() -> Speech2Face:
    """The tiny CNN with its batch norms at speech's statistics (as training leaves them) and a calibration,
    which the graph holds too."""
    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=SECONDS, calibration=EmbeddingCalibration(64))
    model.calibration.target_mean.fill_(0.05)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the batch: activations normalised, as in training
    model.train()
    with torch.no_grad():
        model(torch.stack([torch.from_numpy(speech(SECONDS, seed=seed)) for seed in range(50, 58)]))
    return model.eval()


def _wavs(folder: Path, seeds: range) -> list[str]:
    """WAV files of speech-like voices, one speaker per seed."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        soundfile.write(folder / f"voice{seed}.wav", speech(SECONDS, seed=seed), 16_000)
        paths.append(str(folder / f"voice{seed}.wav"))
    return paths


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _wavs(tmp_path_factory.mktemp("voices"), range(6))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, voices: list[str]) -> tuple[Path, float]:
    """A saved folder with both artefacts: fp32 through the command line (checked on its synthetic voices),
    int8 calibrated on 4 voices and checked on ``voices``; and the int8 agreement the writer measured."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from s2f.model.onnx import write_inference_artefact

    root = tmp_path_factory.mktemp("artefact")
    folder = _speech_model().save_pretrained(root / "model")
    assert main(["export", str(folder), "--inference-artefact", "fp32"]) == 0
    calibration = _wavs(root / "calibration", range(100, 104))
    # The tiny untrained CNN's int8 embeddings sit far from fp32 ones (cosine about 0.8): accepted here,
    # to test the path; the writer's own bar is the next test's.
    _, agreement = write_inference_artefact(
        folder, "int8", check_audio=voices, calibration_audio=calibration, min_cosine=-1.0
    )
    return folder, agreement


def _embeddings(model: Speech2Face, audio: list[str], settings: InferenceSettings) -> torch.Tensor:
    return torch.stack([prediction.embedding for prediction in model.predict(audio, settings=settings)])


def _assert_agree(actual: torch.Tensor, expected: torch.Tensor, centre: torch.Tensor) -> None:
    """The fp32 artefact's tolerance: elements within 1 % of the largest, cosine about the centre >= FP32_COSINE."""
    assert (actual - expected).abs().max() <= 0.01 * expected.abs().max()
    assert torch.cosine_similarity(actual - centre, expected - centre).min() >= FP32_COSINE


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


@pytest.mark.slow
def test_the_fp32_artefact_is_written_used_and_agrees_with_pytorch(
    saved: tuple[Path, float], voices: list[str]
) -> None:
    import onnx

    saved, _ = saved
    proto = onnx.load(str(saved / "inference-fp32.onnx"), load_external_data=False)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert (saved / "inference-fp32.onnx.data").is_file()
    assert json.loads(metadata["s2f.artefact.host"]) == host_kind() and metadata["s2f.artefact.precision"] == "fp32"
    assert len(metadata["s2f.artefact.weights_sha256"]) == 64 and metadata["s2f.artefact.s2f_version"]

    model = Speech2Face.from_pretrained(saved)
    eager = _embeddings(model, voices, FP32_EAGER)
    assert model.last_inference.describe().endswith("eager")
    artefact = _embeddings(model, voices, FP32.replace(batch_size=4))  # two runs: 4 clips, then 2
    assert model.last_inference.describe().startswith("fp32 (inference artefact inference-fp32.onnx), onnxruntime")
    _assert_agree(artefact, eager, model.calibration.target_mean)
    waves = torch.stack([torch.from_numpy(speech(SECONDS, seed=seed)) for seed in range(3)])
    _assert_agree(
        model.embed(waves, settings=FP32), model.embed(waves, settings=FP32_EAGER), model.calibration.target_mean
    )

    model.predict(voices[0])  # auto: the artefact where the CPU has no native bf16, bf16 PyTorch where it has
    expected = "bf16 (auto" if bf16_supported("cpu") else "fp32 (inference artefact"
    assert model.last_inference.describe().startswith(expected)


@pytest.mark.slow
def test_int8_is_opt_in_and_agrees_with_fp32_as_its_writer_measured(
    saved: tuple[Path, float], voices: list[str]
) -> None:
    folder, agreement = saved
    model = Speech2Face.from_pretrained(folder)
    model.predict(voices[0])
    assert "int8" not in model.last_inference.describe()  # never without asking
    predictions = model.predict(voices, settings=INT8)
    assert {p.inference_precision for p in predictions} == {"int8"}
    assert "inference-int8.onnx" in model.last_inference.describe()
    centre = model.calibration.target_mean
    int8 = torch.stack([p.embedding for p in predictions]) - centre
    cosine = torch.cosine_similarity(int8, _embeddings(model, voices, FP32_EAGER) - centre).min().item()
    assert cosine == pytest.approx(agreement, abs=1e-4)


@pytest.mark.slow
def test_an_artefact_short_of_its_bar_is_not_written(tmp_path: Path, voices: list[str]) -> None:
    from s2f.errors import ConfigError
    from s2f.model.onnx import write_inference_artefact

    folder = _speech_model().save_pretrained(tmp_path / "model")
    with pytest.raises(ConfigError, match=r"inference-fp32.onnx: not written: its fp32 embeddings reach only cosine"):
        write_inference_artefact(folder, "fp32", check_audio=voices[:2], min_cosine=1.01)
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]


@pytest.mark.slow
def test_eval_embeddings_run_the_artefact(saved: tuple[Path, float]) -> None:
    from s2f.eval.data import predict_embeddings

    model = Speech2Face.from_pretrained(saved[0])
    audio = [speech(SECONDS, seed=seed) for seed in range(3)]
    artefact = predict_embeddings(model, audio, SECONDS, settings=FP32)
    assert model.last_inference.describe().startswith("fp32 (inference artefact inference-fp32.onnx)")
    _assert_agree(
        artefact, predict_embeddings(model, audio, SECONDS, settings=FP32_EAGER), model.calibration.target_mean
    )


@pytest.mark.slow
def test_predict_command_runs_the_artefact_and_says_so(saved: tuple[Path, float], voices: list[str], capsys) -> None:
    assert main(["predict", "--model", str(saved[0]), voices[0], "--inference-precision", "int8"]) == 0
    assert "inference: int8 (inference artefact inference-int8.onnx)" in capsys.readouterr().err


@pytest.mark.slow
def test_weights_changed_in_memory_make_the_artefact_stale_with_one_line(
    saved: tuple[Path, float], voices: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    saved, _ = saved
    model = Speech2Face.from_pretrained(saved)
    model.predict(voices[0], settings=FP32)
    assert "inference artefact" in model.last_inference.describe()
    with torch.no_grad():
        model.encoder.head[-1].bias.add_(0.1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        new = _embeddings(model, voices[:2], FP32)
        model.predict(voices[0], settings=FP32)  # said once, not at every call
    assert model.last_inference.describe().endswith("eager")
    (line,) = _lines(caplog)
    assert "inference-fp32.onnx: stale" in line and f"s2f export {saved} --inference-artefact fp32" in line
    torch.testing.assert_close(new, _embeddings(model, voices[:2], FP32_EAGER))


def _folder_with_artefact(tmp_path: Path, model: Speech2Face, **metadata: str) -> Path:
    """A saved folder whose fp32 artefact is a graph-less ONNX file with ``model``'s valid metadata, changed by
    ``metadata``: what is checked before onnxruntime opens it."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime

    folder = model.save_pretrained(tmp_path / "model")
    entries = {**artefact_metadata(model, "fp32", onnxruntime.__version__), **metadata}
    proto = onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], []))
    for key, value in entries.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save_model(proto, str(folder / artefact_file("fp32")))
    return folder


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        ({"s2f.artefact.weights_sha256": "0" * 64}, "stale: written for other weights"),
        ({"s2f.artefact.s2f_version": "0.0.1"}, "written by s2f 0.0.1 with onnxruntime"),
        ({"s2f.artefact.onnxruntime_version": "1.0.0"}, "with onnxruntime 1.0.0, this is s2f"),
        ({"s2f.artefact.host": json.dumps({**host_kind(), "cpu_capability": "ARM SVE"})}, "another kind of host"),
        ({"s2f.artefact.format": "other"}, "not an s2f inference artefact"),
    ],
)
def test_a_stale_or_foreign_artefact_is_ignored_with_one_line(
    tmp_path: Path, changed: dict[str, str], said: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    folder = _folder_with_artefact(tmp_path, _speech_model(), **changed)
    model = Speech2Face.from_pretrained(folder)
    wave = (torch.from_numpy(speech(SECONDS, seed=1)), 16_000)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        fallback = model.predict([wave, wave], settings=FP32)
        model.predict(wave, settings=FP32)
    assert model.last_inference.describe() == "fp32 (asked for), channels-last, eager"
    (line,) = _lines(caplog)
    assert line.startswith(f"{folder / 'inference-fp32.onnx'}: ") and said in line
    assert line.endswith(f"rewrite it: s2f export {folder} --inference-artefact fp32")
    torch.testing.assert_close(fallback[0].embedding, model.predict(wave, settings=FP32_EAGER).embedding)


@pytest.mark.parametrize(
    ("graph", "data", "said"),
    [
        (b"not a protobuf \xff\xfe", None, "unreadable"),
        (None, b"truncated", "onnxruntime cannot load it"),
    ],
)
def test_a_corrupt_artefact_is_ignored_with_one_line(
    tmp_path: Path, graph: bytes | None, data: bytes | None, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    folder = _folder_with_artefact(tmp_path, _speech_model())
    if graph is not None:
        (folder / "inference-fp32.onnx").write_bytes(graph)
    if data is not None:  # valid metadata, a graph that names weights missing from a truncated data file
        _with_external_weights(folder / "inference-fp32.onnx")
        (folder / "inference-fp32.onnx.data").write_bytes(data)
    model = Speech2Face.from_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prediction = model.predict((torch.from_numpy(speech(SECONDS, seed=2)), 16_000), settings=FP32)
    assert prediction.inference_precision == "fp32" and model.last_inference.describe().endswith("eager")
    (line,) = _lines(caplog)
    assert str(folder / "inference-fp32.onnx") in line and said in line and "s2f export" in line


def _with_external_weights(path: Path) -> None:
    import onnx

    proto = onnx.load(str(path))
    weight = onnx.numpy_helper.from_array(torch.ones(64, 64).numpy(), "weight")
    proto.graph.initializer.append(weight)
    onnx.save_model(proto, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)


def test_weights_outside_the_folder_are_never_opened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    folder = _folder_with_artefact(tmp_path, _speech_model())
    _with_external_weights(folder / "inference-fp32.onnx")
    outside = tmp_path / "elsewhere.data"
    shutil.move(folder / "inference-fp32.onnx.data", outside)
    (folder / "inference-fp32.onnx.data").symlink_to(outside)
    model = Speech2Face.from_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model.predict((torch.from_numpy(speech(SECONDS, seed=2)), 16_000), settings=FP32)
    (line,) = _lines(caplog)
    assert "links outside the model folder" in line


def test_int8_without_an_artefact_runs_pytorch_and_says_how_to_write_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = Speech2Face.from_pretrained(_speech_model().save_pretrained(tmp_path / "model"))
    wave = (torch.from_numpy(speech(SECONDS, seed=3)), 16_000)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        prediction = model.predict(wave, settings=INT8)
        model.predict(wave, settings=INT8)
    assert prediction.inference_precision == ("bf16" if bf16_supported("cpu") else "fp32")
    assert "int8 runs from an int8 inference artefact only" in model.last_inference.describe()
    (line,) = _lines(caplog)
    assert f"{tmp_path / 'model'} has no inference-int8.onnx" in line and "--inference-artefact int8" in line


def test_no_artefact_means_no_line_and_the_pytorch_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = Speech2Face.from_pretrained(_speech_model().save_pretrained(tmp_path / "model"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model.predict((torch.from_numpy(speech(SECONDS, seed=3)), 16_000), settings=FP32)
    assert _lines(caplog) == [] and model.last_inference.describe() == "fp32 (asked for), channels-last, eager"


def test_export_without_out_dir_needs_the_artefact_and_changes_nothing_else(tmp_path: Path, capsys) -> None:
    folder = _speech_model().save_pretrained(tmp_path / "model")
    assert main(["export", str(folder)]) != 0
    assert "needs OUT_DIR, or --inference-artefact" in capsys.readouterr().err
    assert main(["export", str(folder), "--inference-artefact", "fp32", "--onnx"]) != 0
    assert "--onnx write a new model folder: give OUT_DIR" in capsys.readouterr().err

"""Model folders made by an attacker: each load ends in one S2FError line and does nothing to the machine.

Every case below is loaded three ways (``Speech2Face.from_pretrained``, ``s2f predict`` and ``s2f serve``'s
model load) under an audit hook (``tests/helpers/audit.py``) that records every file opened outside the
folder, every socket event, every subprocess, every import outside s2f and its declared dependencies,
and every ``pickle.find_class``. A case passes when the load fails with exactly one line of s2f's own
error and the audit recorded nothing.
"""

from __future__ import annotations

import inspect
import json
import pickle
import shutil
import signal
import struct
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from helpers.audit import audited
from s2f import DECODERS, ENCODERS, Speech2Face
from s2f.cli import main
from s2f.config.components import import_trusted
from s2f.errors import S2FError
from s2f.model.decoder_folder import save_decoder
from s2f.model.schema import COMPONENT_ARGS, MAX_CONFIG_BYTES

Edit = Callable[[Path, Path], Path]  # (folder, scratch outside it) -> the path to load


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Genuine folders to tamper with: paper-CNN, timm and GE2E models, one with a decoder, a decoder alone."""
    root = tmp_path_factory.mktemp("bases")
    torch.manual_seed(0)
    decoder = DECODERS.create("warp_decoder_tiny")
    return {
        "cnn": Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=1.0).save_pretrained(root / "cnn"),
        "timm": Speech2Face(ENCODERS.create("s2f_resnet18_tiny"), clip_seconds=1.0).save_pretrained(root / "timm"),
        "ge2e": Speech2Face(ENCODERS.create("s2f_ge2e_tiny"), clip_seconds=1.0).save_pretrained(root / "ge2e"),
        "decoder": Speech2Face(
            ENCODERS.create("s2f_cnn_tiny"), decoder, clip_seconds=1.0, teacher={"name": "toy"}
        ).save_pretrained(root / "with_decoder"),
        "decoder_only": save_decoder(decoder, root / "decoder_only", teacher={"name": "toy"}),
    }


def _config(folder: Path, change: Callable[[dict], object]) -> Path:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _encoder_arg(key: str, value: object) -> Edit:
    return lambda folder, _: _config(folder, lambda c: c["encoder"]["init_args"].update({key: value}))


def _timm_kwargs(kwargs: dict) -> Edit:
    return _encoder_arg("model_kwargs", kwargs)


def _decoder_weights(value: str) -> Edit:
    return lambda folder, _: _config(folder, lambda c: c["decoder"]["init_args"].update(weights=value))


def _weights_link(folder: Path, scratch: Path) -> Path:
    # A genuine, matching weights file, but outside the folder: it must not be opened.
    outside = scratch / "elsewhere.safetensors"
    shutil.move(folder / "model.safetensors", outside)
    (folder / "model.safetensors").symlink_to(outside)
    return folder


def _config_link(folder: Path, scratch: Path) -> Path:
    outside = scratch / "config.json"
    shutil.move(folder / "config.json", outside)
    (folder / "config.json").symlink_to(outside)
    return folder


def _checkpoint_pickle(folder: Path, scratch: Path) -> Path:
    # A pickle placed where timm's checkpoint_path would have sent the load: it must never be opened.
    (scratch / "evil.pth").write_bytes(pickle.dumps({"state_dict": {}}))
    return _timm_kwargs({"checkpoint_path": str(scratch / "evil.pth")})(folder, scratch)


def _weights(change: Callable[[dict[str, torch.Tensor]], None]) -> Edit:
    def edit(folder: Path, _: Path) -> Path:
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
        change(state)
        save_file(state, str(folder / "model.safetensors"))
        return folder

    return edit


def _first_float(value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(state: dict[str, torch.Tensor]) -> None:
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key].view(-1)[0] = value

    return change


def _giant_header(folder: Path, _: Path) -> Path:
    # A safetensors header that declares a 4 TB tensor over a file of a few bytes.
    header = json.dumps({"head.0.weight": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    return folder


def _text(text: bytes) -> Edit:
    def edit(folder: Path, _: Path) -> Path:
        (folder / "config.json").write_bytes(text)
        return folder

    return edit


def _huge_config(folder: Path, _: Path) -> Path:
    with open(folder / "config.json", "r+b") as handle:  # 100 MB, sparse: cheap to make, costly to read
        handle.truncate(100 * 2**20)
    return folder


def _onnx_file(folder: Path, scratch: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["wave"], ["embedding"])],
        "s2f",
        [helper.make_tensor_value_info("wave", TensorProto.FLOAT, [1, 16000])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 16000])],
    )
    onnx.save(helper.make_model(graph), scratch / "model.onnx")
    return scratch / "model.onnx"


def _onnx_folder(folder: Path, scratch: Path) -> Path:
    onnx_file = _onnx_file(folder, scratch)
    target = scratch / "onnx_folder"
    target.mkdir()
    shutil.move(onnx_file, target / "model.onnx")
    return target


def _checkpoint_naming_a_hub(folder: Path, scratch: Path) -> Path:
    # A training checkpoint (read with weights_only=True) whose s2f record names a hub architecture.
    record = json.loads((folder / "config.json").read_text())
    record["encoder"]["init_args"]["model_name"] = "hf-hub:timm/resnet18.a1_in1k"
    from safetensors.torch import load_file

    weights = {f"encoder.{k}": v for k, v in load_file(str(folder / "model.safetensors")).items()}
    torch.save({"s2f": record, "state_dict": weights}, scratch / "run.ckpt")
    return scratch / "run.ckpt"


# (base folder, how it is tampered with). Every string field that a loader reads gets a hub id or URL.
CASES: dict[str, tuple[str, Edit]] = {
    "timm_hub_name": ("timm", _encoder_arg("model_name", "hf-hub:timm/resnet18.a1_in1k")),
    "timm_pretrained_tag": ("timm", _encoder_arg("model_name", "resnet18.a1_in1k")),
    "timm_local_dir": ("timm", _encoder_arg("model_name", "local-dir:/tmp")),
    "timm_file_url": ("timm", _encoder_arg("model_name", "file:///etc/passwd")),
    "timm_unknown_name": ("timm", _encoder_arg("model_name", "no_such_architecture")),
    "timm_checkpoint_path": ("timm", _checkpoint_pickle),
    "timm_pretrained_true": ("timm", _timm_kwargs({"pretrained": True})),
    "timm_pretrained_cfg_overlay_file": ("timm", _timm_kwargs({"pretrained_cfg_overlay": {"file": "/etc/passwd"}})),
    "timm_pretrained_cfg_overlay_hub": (
        "timm",
        _timm_kwargs({"pretrained_cfg_overlay": {"hf_hub_id": "timm/resnet18.a1_in1k"}}),
    ),
    "timm_kwarg_as_init_arg": ("timm", _encoder_arg("pretrained", True)),
    "ge2e_load_pretrained": ("ge2e", _encoder_arg("load_pretrained", True)),
    "pool_with_path": ("timm", _encoder_arg("pool", "time/../../etc")),
    "teacher_hub_id": ("cnn", lambda f, _: _config(f, lambda c: c.update(teacher={"name": "hf-hub:org/face"}))),
    "teacher_http_url": ("cnn", lambda f, _: _config(f, lambda c: c.update(teacher={"name": "http://x.example/t"}))),
    "version_file_url": ("cnn", lambda f, _: _config(f, lambda c: c.update(s2f_version="file:///etc/passwd"))),
    "calibration_note_path": (
        "cnn",
        lambda f, _: _config(
            f, lambda c: c.update(version=2, calibration={"embed_dim": 64, "fitted_on": {"split": "../../etc"}})
        ),
    ),
    "unknown_top_level_url": ("cnn", lambda f, _: _config(f, lambda c: c.update(hub="https://x.example/model"))),
    "decoder_weights_absolute": ("decoder", _decoder_weights("/etc/passwd")),
    "decoder_weights_dotdot": ("decoder", _decoder_weights("../../outside.safetensors")),
    "decoder_weights_http": ("decoder", _decoder_weights("http://x.example/decoder.safetensors")),
    "decoder_weights_hub": ("decoder", _decoder_weights("hf-hub:org/decoder")),
    "weights_symlink_out_of_folder": ("cnn", _weights_link),
    "config_symlink_out_of_folder": ("cnn", _config_link),
    "giant_layer_in_config": ("cnn", _encoder_arg("hidden_dim", 10**12)),
    "negative_size": ("cnn", _encoder_arg("embed_dim", -1)),
    "size_as_string": ("cnn", _encoder_arg("embed_dim", "64")),
    "giant_shape_in_weights_header": ("cnn", _giant_header),
    "nan_weight": ("cnn", _weights(_first_float(float("nan")))),
    "inf_weight": ("cnn", _weights(_first_float(float("inf")))),
    "nan_in_config": ("cnn", _text(b'{"format": "s2f-model", "encoder": {}, "preprocessing": {"clip_seconds": NaN}}')),
    "deeply_nested_config": ("cnn", _text(b'{"format": "s2f-model", "encoder": ' + b"[" * 10**5 + b"]" * 10**5 + b"}")),
    "huge_config": ("cnn", _huge_config),
    "non_utf8_config": ("cnn", _text('{"format": "s2f-model", "teacher": {"name": "é"}}'.encode("latin-1"))),
    "duplicate_keys": (
        "cnn",
        _text(
            b'{"format": "s2f-model", "encoder": {"class_path": "s2f.encoders.cnn.PaperCNNEncoder", '
            b'"class_path": "os.system"}}'
        ),
    ),
    "format_hub_id": ("cnn", lambda f, _: _config(f, lambda c: c.update(format="hf-hub:org/model"))),
    "class_path_hub_id": ("cnn", lambda f, _: _config(f, lambda c: c["encoder"].update(class_path="hf-hub:o/m"))),
    "preprocessing_url": (
        "cnn",
        lambda f, _: _config(f, lambda c: c["preprocessing"].update(sample_rate="https://x.example/16000")),
    ),
    "checkpoint_naming_a_hub": ("timm", _checkpoint_naming_a_hub),
    "class_path_outside_s2f": ("cnn", lambda f, _: _config(f, lambda c: c["encoder"].update(class_path="os.system"))),
    "decoder_folder_as_model": ("decoder_only", lambda f, _: f),
    "onnx_file_as_model": ("cnn", _onnx_file),
    "onnx_folder_as_model": ("cnn", _onnx_folder),
}


def _voice(folder: Path) -> Path:
    path = folder / "voice.wav"
    sf.write(path, (0.3 * np.sin(np.arange(32_000) / 10.0)).astype(np.float32), 16_000)
    return path


def _load(entry: str, target: Path, scratch: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Loads ``target`` through ``entry``; returns the one error line it ended with."""
    if entry == "api":
        with pytest.raises(S2FError) as error:
            Speech2Face.from_pretrained(target)
        return str(error.value)
    voice = _voice(scratch)
    args = ["predict", "--model", str(target), str(voice), "-o", str(scratch / "face.npy")]
    if entry == "serve":
        args = ["serve", "--model", str(target), "--port", "1"]
    capsys.readouterr()
    status = main(args)
    captured = capsys.readouterr()
    assert status == 2, captured
    assert captured.err.startswith("s2f: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err.strip()


@pytest.mark.parametrize("entry", ["api", "predict", "serve"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_folder_is_one_line_and_does_nothing_else(
    case: str,
    entry: str,
    bases: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if case == "onnx_file_as_model" and entry == "predict":
        pytest.skip("s2f predict runs .onnx files on purpose (onnxruntime), so it is not a folder's loader")
    base, edit = CASES[case]
    folder = shutil.copytree(bases[base], tmp_path / "model")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    target = edit(folder, scratch)
    # s2f serve makes and removes its own upload folder and names it in the environment.
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    owned = (str(Path(tempfile.gettempdir()) / "s2f-serve-"),) if entry == "serve" else ()
    allowed = target if target.is_dir() else target.parent
    with audited(allowed, owned=owned) as audit:
        line = _load(entry, target, scratch, capsys)
    assert "\n" not in line
    assert audit.events == [], audit.events


def test_every_case_the_issue_names_is_here() -> None:
    assert len(CASES) >= 30
    names = " ".join(CASES)
    for required in ("hub", "checkpoint_path", "pretrained_true", "overlay", "dotdot", "absolute", "symlink",
                     "file_url", "http", "giant", "nan", "inf", "nested", "huge", "non_utf8", "duplicate",
                     "decoder_folder", "onnx"):  # fmt: skip
        assert required in names, required


def test_the_harness_sees_what_it_is_meant_to_see(tmp_path: Path) -> None:
    # A harness that records nothing would pass every case above: it must see each kind of event.
    import socket
    import subprocess

    (tmp_path / "inside.txt").write_text("x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("x")
    with audited(tmp_path) as audit:
        (tmp_path / "inside.txt").read_text()
        outside.read_text()
        socket.getaddrinfo("localhost", None)  # answered by this machine: no network
        subprocess.run(["true"], check=True)
        pickle.loads(pickle.dumps(Path("x")))
    outside.unlink()
    kinds = [event.split(" ", 1)[0] for event in audit.events]
    assert kinds[0] == "open" and str(outside) in audit.events[0], audit.events
    assert {"open", "socket.getaddrinfo", "subprocess.Popen", "pickle.find_class"} <= set(kinds), audit.events


def test_an_untouched_folder_loads_under_the_harness_with_no_events(bases: dict[str, Path], tmp_path: Path) -> None:
    for name in ("cnn", "timm", "ge2e", "decoder"):
        folder = shutil.copytree(bases[name], tmp_path / name)
        with audited(folder) as audit:
            model = Speech2Face.from_pretrained(folder)
        assert audit.events == [], (name, audit.events)
        assert model.predict((torch.sin(torch.arange(16_000) / 10.0), 16_000)).embedding.isfinite().all()


@pytest.mark.parametrize("class_path", sorted(COMPONENT_ARGS))
def test_each_declared_class_declares_exactly_its_constructor_arguments(class_path: str) -> None:
    cls = import_trusted(class_path, "test")
    assert f"{cls.__module__}.{cls.__qualname__}" == class_path
    parameters = set(inspect.signature(cls).parameters)
    assert set(COMPONENT_ARGS[class_path]) == parameters


def test_every_registered_model_saves_a_config_the_schema_accepts(tmp_path: Path) -> None:
    from s2f.model.schema import check_saved_model

    for name in ENCODERS.list(tiny=True):
        model = Speech2Face(ENCODERS.create(name), clip_seconds=1.0)
        check_saved_model(model.config(), name)
    for name in DECODERS.list(tiny=True):
        model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), DECODERS.create(name), clip_seconds=1.0)
        check_saved_model(json.loads((model.save_pretrained(tmp_path / name) / "config.json").read_text()), name)


def test_the_size_limit_reads_no_further_than_it_must(tmp_path: Path) -> None:
    from s2f.errors import ConfigError
    from s2f.model.schema import read_config_file

    path = tmp_path / "config.json"
    path.write_bytes(b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than 1024 kB"):
        read_config_file(path)


def test_without_the_schema_the_harness_catches_the_checkpoint_path_case(
    bases: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cases above pass because of the schema, not because the harness is blind: switched off, the
    # load opens the file the config names (timm's checkpoint_path) and the harness records it.
    import s2f.model.speech2face

    monkeypatch.setattr(s2f.model.speech2face, "check_saved_model", lambda *args, **kwargs: None)
    folder = shutil.copytree(bases["timm"], tmp_path / "model")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _checkpoint_pickle(folder, scratch)
    with audited(folder) as audit, pytest.raises(S2FError):
        Speech2Face.from_pretrained(folder)
    assert any(event.startswith("open") and "evil.pth" in event for event in audit.events), audit.events


class _PluginEncoder(torch.nn.Module):
    """A plug-in's class that s2f does not declare: its type hints are its schema."""

    def __init__(
        self,
        width: int = 8,
        rate: float = 0.1,
        name: str = "small",
        mode: Literal["a", "b"] = "a",
        sizes: Sequence[int] = (1, 2),
        flag: bool = False,
        extra: dict | None = None,
        anything: object = None,
    ) -> None:
        super().__init__()


def test_a_plugin_class_is_held_to_its_type_hints() -> None:
    from s2f.model.schema import _rules_from_signature

    rules = _rules_from_signature(_PluginEncoder)
    good = {"width": 64, "rate": 0.5, "name": "wide", "mode": "b", "sizes": [3, 4], "flag": True, "extra": None}
    assert all(rules[key].problem(value) is None for key, value in good.items())
    hostile = {
        "width": 10**12,
        "rate": float("nan"),
        "name": "hf-hub:org/weights",
        "mode": "c",
        "sizes": [1] * 1000,
        "flag": "yes",
        "extra": {"checkpoint_path": "/etc/passwd"},
        "anything": "x",
    }
    assert all(rules[key].problem(value) is not None for key, value in hostile.items())

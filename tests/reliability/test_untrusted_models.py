"""Model folders from someone else: every tampered case is one line of s2f's own error, before harm is done.

A config.json names classes to import and sizes to allocate, and model.safetensors may be cut short or
padded; loading must import only s2f's and installed plug-ins' classes and must check sizes against
the weights file before it allocates anything.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from s2f import ENCODERS, Speech2Face
from s2f.config.components import build_component, trusted_packages
from s2f.encoders import VoiceEncoder
from s2f.errors import ConfigError, S2FError, WeightsError


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), clip_seconds=1.0, teacher={"name": "toy"})
    return model.save_pretrained(tmp_path / "model")


def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text and isinstance(error.value, S2FError), text
    return text


def test_a_class_path_outside_s2f_and_its_plugins_is_never_imported(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that leaves a mark when imported: loading must refuse it without importing it.
    marker = tmp_path / "imported"
    (tmp_path / "hostile_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Encoder:\n    pass\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _edit_config(saved, lambda c: c["encoder"].update(class_path="hostile_module.Encoder"))
    with pytest.raises(ConfigError) as error:
        Speech2Face.from_pretrained(saved)
    assert "refusing to import 'hostile_module.Encoder'" in _one_line(error)
    assert not marker.exists() and "hostile_module" not in sys.modules


@pytest.mark.parametrize("class_path", ["os.system", "subprocess.Popen", "builtins.eval", "noclass"])
def test_stdlib_callables_are_refused_too(saved: Path, class_path: str) -> None:
    _edit_config(saved, lambda c: c["encoder"].update(class_path=class_path))
    with pytest.raises(ConfigError, match=r"refusing to import|must be a dotted Python name") as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


def test_an_s2f_class_of_the_wrong_kind_is_refused(saved: Path) -> None:
    _edit_config(saved, lambda c: c["encoder"].update(class_path="s2f.model.speech2face.Speech2Face"))
    with pytest.raises(ConfigError, match="is not a VoiceEncoder") as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


def test_installed_plugin_packages_are_trusted_without_being_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = importlib.metadata.EntryPoint("narrow", "third_party_voices.encoders:narrow", "s2f.encoders")
    real = importlib.metadata.entry_points

    def entry_points(**kwargs: object) -> object:
        return [fake] if kwargs.get("group") == "s2f.encoders" else real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert {"s2f", "third_party_voices"} <= trusted_packages()
    assert "third_party_voices" not in sys.modules
    # Trusted, so it is imported; it is not installed, so the error says so.
    with pytest.raises(ConfigError, match="is the package that defines it installed"):
        build_component({"class_path": "third_party_voices.encoders.Narrow", "init_args": {}}, VoiceEncoder)


def test_an_absurd_size_is_refused_by_the_schema_before_anything_is_built(saved: Path) -> None:
    _edit_config(saved, lambda c: c["encoder"]["init_args"].update(hidden_dim=10**9))
    with pytest.raises(
        ConfigError, match=r"encoder\.init_args\.hidden_dim is 1000000000, outside \[1, 65536\]"
    ) as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


def test_a_size_within_bounds_that_the_file_does_not_hold_is_refused_before_anything_is_allocated(
    saved: Path,
) -> None:
    # 65536 hidden units from 64 inputs pass the schema; the meta-device check compares with the file first.
    Speech2Face.from_pretrained(saved)  # imports done, so the clock below sees the refusal alone
    _edit_config(saved, lambda c: c["encoder"]["init_args"].update(hidden_dim=65536))
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"does not match.*shape") as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)
    assert time.perf_counter() - started < 5


def test_init_args_the_class_does_not_take_are_one_line(saved: Path) -> None:
    _edit_config(saved, lambda c: c["encoder"]["init_args"].update(surprise=1))
    with pytest.raises(
        ConfigError, match=r"encoder\.init_args\.surprise is not an argument of s2f\.encoders\.cnn\.PaperCNNEncoder"
    ) as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


def test_values_the_schema_passes_but_the_constructor_rejects_are_one_line(saved: Path) -> None:
    _edit_config(saved, lambda c: c["encoder"]["init_args"].update(num_bins=300))
    with pytest.raises(ConfigError, match=r"cannot build s2f\.encoders\.cnn\.PaperCNNEncoder") as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


@pytest.mark.parametrize("damage", ["truncated", "padded", "empty", "garbage_header"])
def test_a_damaged_weights_file_is_one_line(saved: Path, damage: str) -> None:
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "padded": data + b"\0" * 4096,
        "empty": b"",
        "garbage_header": (10**12).to_bytes(8, "little") + data[8:],
    }[damage]
    weights.write_bytes(damaged)
    with pytest.raises(WeightsError, match=r"model\.safetensors") as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


@pytest.mark.parametrize(
    "config",
    ["[]", "not json", '{"format": "s2f-model"}', '{"format": "s2f-model", "encoder": 3}'],
)
def test_a_malformed_config_is_one_line(saved: Path, config: str) -> None:
    (saved / "config.json").write_text(config)
    with pytest.raises(ConfigError) as error:
        Speech2Face.from_pretrained(saved)
    _one_line(error)


def test_an_untouched_folder_still_loads_identically(saved: Path) -> None:
    again = Speech2Face.from_pretrained(saved)
    original = Speech2Face.from_pretrained(saved)
    for (name, a), (_, b) in zip(again.state_dict().items(), original.state_dict().items(), strict=True):
        assert torch.equal(a, b), name

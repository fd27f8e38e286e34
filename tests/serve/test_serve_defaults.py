"""`s2f serve` after `s2f demo`: the demo's model and its held-out gallery are found without flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2f.cli.serve_command import _model_and_gallery
from s2f.errors import ConfigError


def demo_folder(root: Path, *, shards: bool = True) -> Path:
    """The layout `s2f demo --out ROOT` leaves: ROOT/model (a saved model) and ROOT/shards (a shard root)."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text("{}")
    if shards:
        (root / "shards").mkdir()
        (root / "shards" / "s2f_shards.json").write_text("{}")
    return root


def test_a_demo_folder_or_its_model_brings_its_own_gallery(tmp_path: Path) -> None:
    out = demo_folder(tmp_path / "my-demo")
    expected = (str(out / "model"), str(out / "shards"))
    assert _model_and_gallery(str(out), None) == expected
    assert _model_and_gallery(str(out / "model"), None) == expected
    assert _model_and_gallery(str(out), "elsewhere") == (str(out / "model"), "elsewhere")  # a given gallery wins


def test_a_model_without_demo_shards_has_no_gallery(tmp_path: Path) -> None:
    out = demo_folder(tmp_path / "bare", shards=False)
    assert _model_and_gallery(str(out / "model"), None) == (str(out / "model"), None)


def test_without_flags_it_serves_runs_demo_or_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="s2f demo"):
        _model_and_gallery(None, None)
    demo_folder(tmp_path / "runs" / "demo")
    assert _model_and_gallery(None, None) == (str(Path("runs/demo/model")), str(Path("runs/demo/shards")))

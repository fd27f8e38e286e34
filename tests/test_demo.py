"""`s2f demo --quick`, end to end, as a new user runs it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from s2f import Speech2Face
from s2f.cli import main


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "train loss (paper's total)" in out and "average training face" in out
    model = Speech2Face.from_pretrained(tmp_path / "demo" / "model")
    assert model.teacher["name"] == "vggface_tiny" and model.clip_seconds == 3.0
    shards = sorted(p.name for p in (tmp_path / "demo" / "shards").iterdir())
    assert shards == ["s2f_shards.json", "test", "train", "val"]
    angles = [float(line.split()[-1]) for line in out.splitlines() if "(deg)" in line and "test voices" in line]
    assert len(angles) == 2 and all(0 <= a <= 180 and not math.isnan(a) for a in angles)

"""The cost model (benchmarks/scale_cost.py) recomputes its table from the figures it is given.

Each test writes its own inputs JSON with round figures, so every expected number is worked out by
hand here, and checks that changing one figure moves exactly the numbers the model says it moves.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale_cost.py"


@pytest.fixture(scope="module")
def model() -> Any:
    """The script as a module: benchmarks/ is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location("scale_cost", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _figure(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "", "command": "python benchmarks/x.py", "host": "a test"}


def _inputs(**figures: float) -> dict[str, Any]:
    """3,600 clips; a 10-core CPU box and a 10-core node with 2 GPUs of 100 TFLOP/s (at 50 % utilisation)."""
    values = {
        "decode_cpu_s": 0.0,
        "detect_align_cpu_s": 1.0,
        "embed_cpu_s": 0.0,
        "write_cpu_s": 0.0,
        "embed_gflop": 0.0,
        "shard_bytes": 150_000.0,
        "train_gflop": 100.0,
        "train_cpu_tflops_per_core": 0.01,
        "loader_cpu_s": 0.0,
        "gpu_utilisation": 0.5,
    } | figures
    return {
        "figures": {name: _figure(value) for name, value in values.items()},
        "devices": {"G": {"bf16_dense_tflops": 100.0, "source": "a test"}},
        "corpora": [{"name": "C", "clips": 3600}],
        "configurations": [
            {"name": "cpu", "nodes": 1, "cores_per_node": 10, "gpus_per_node": 0, "usd_per_hour": 2.0},
            {"name": "gpu", "nodes": 1, "cores_per_node": 10, "gpus_per_node": 2, "gpu": "G", "usd_per_hour": 8.0},
        ],
    }


def _rows(model: Any, inputs: dict[str, Any], tmp_path: Path) -> dict[str, dict[str, Any]]:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(inputs))
    return {row["configuration"]: row for row in model.estimate(model.load_inputs(path))}


def test_a_detect_bound_prepare_doubles_when_detect_costs_twice_as_much(model: Any, tmp_path: Path) -> None:
    once = _rows(model, _inputs(decode_cpu_s=0.2, write_cpu_s=0.1), tmp_path)
    twice = _rows(model, _inputs(decode_cpu_s=0.2, write_cpu_s=0.1, detect_align_cpu_s=2.0), tmp_path)
    # 3,600 clips x (0.2 + 1 + 0.1) CPU s on 10 cores = 468 s; the GPU's embedding costs nothing here.
    assert once["gpu"]["prepare_hours"] == pytest.approx(3600 * 1.3 / 10 / 3600)
    assert once["gpu"]["prepare_bound"] == twice["gpu"]["prepare_bound"] == "detect (CPU)"
    # Only detect's share doubles: 1.3 -> 2.3 CPU s per clip.
    assert twice["gpu"]["prepare_hours"] == pytest.approx(once["gpu"]["prepare_hours"] * 2.3 / 1.3)
    detect_only = _rows(model, _inputs(), tmp_path)
    doubled = _rows(model, _inputs(detect_align_cpu_s=2.0), tmp_path)
    assert doubled["cpu"]["prepare_hours"] == pytest.approx(2 * detect_only["cpu"]["prepare_hours"])
    # Storage does not depend on how clips are prepared: 3,600 x 150 kB = 0.54 GB.
    assert once["cpu"]["storage_gb"] == once["gpu"]["storage_gb"] == pytest.approx(0.54)


def test_the_teacher_embeds_on_the_cpu_box_and_on_the_gpus_elsewhere(model: Any, tmp_path: Path) -> None:
    # VGG-Face-like: 2 CPU s per face on one core, 1,000 GFLOP per face (so that the GPU bounds).
    rows = _rows(model, _inputs(embed_cpu_s=2.0, embed_gflop=1000.0), tmp_path)
    assert rows["cpu"]["prepare_hours"] == pytest.approx(3600 * (1.0 + 2.0) / 10 / 3600)
    assert rows["cpu"]["prepare_bound"] == "embed (CPU)"
    # 3,600 faces x 1e12 FLOP / (2 GPUs x 100e12 x 0.5) = 36 s, against 360 s of CPU stages: the CPU bounds.
    assert rows["gpu"]["prepare_hours"] == pytest.approx(360 / 3600)
    assert rows["gpu"]["prepare_bound"] == "detect (CPU)"
    heavy = _rows(model, _inputs(embed_cpu_s=2.0, embed_gflop=20_000.0), tmp_path)
    assert heavy["gpu"]["prepare_hours"] == pytest.approx(720 / 3600)
    assert heavy["gpu"]["prepare_bound"] == "embed (GPU)"


def test_an_epoch_is_compute_or_loader_bound_and_the_loader_rate_follows(model: Any, tmp_path: Path) -> None:
    rows = _rows(model, _inputs(), tmp_path)
    # GPU: 3,600 x 100e9 FLOP / (2 x 100e12 x 0.5) = 3.6 s; the loader costs nothing.
    gpu = rows["gpu"]
    assert gpu["epoch_hours"] == pytest.approx(3.6 / 3600) and gpu["epoch_bound"] == "compute (GPU)"
    assert gpu["loader_clips_per_s"] == pytest.approx(1000)
    assert gpu["loader_mb_per_s"] == pytest.approx(150)
    # CPU box: 3,600 x 100e9 / (10 cores x 0.01e12) = 3,600 s.
    assert rows["cpu"]["epoch_hours"] == pytest.approx(1.0) and rows["cpu"]["epoch_bound"] == "compute (CPU)"
    # Twice the GPUs' rate halves a compute-bound epoch and doubles the clips/s the loader must deliver.
    faster = _inputs()
    faster["devices"]["G"]["bf16_dense_tflops"] = 200.0
    fast = _rows(model, faster, tmp_path)["gpu"]
    assert fast["epoch_hours"] == pytest.approx(gpu["epoch_hours"] / 2)
    assert fast["loader_clips_per_s"] == pytest.approx(2 * gpu["loader_clips_per_s"])
    # 0.02 CPU s per clip of loading on 10 cores: 7.2 s > 3.6 s, the loader bounds and keeps all 10 cores busy.
    slow = _rows(model, _inputs(loader_cpu_s=0.02), tmp_path)
    assert slow["gpu"]["epoch_bound"] == "loader (CPU)" and slow["gpu"]["epoch_hours"] == pytest.approx(7.2 / 3600)
    assert slow["gpu"]["loader_cores"] == pytest.approx(10)
    # On the CPU box loading shares the cores with training: 3,600 s + 7.2 s.
    assert slow["cpu"]["epoch_hours"] == pytest.approx((3600 + 7.2) / 3600)
    # Money: hours x the assumed price.
    assert slow["gpu"]["epoch_usd"] == pytest.approx(7.2 / 3600 * 8.0)


def test_nodes_multiply_cores_and_gpus(model: Any, tmp_path: Path) -> None:
    inputs = _inputs()
    four = copy.deepcopy(inputs["configurations"][1]) | {"name": "4 nodes", "nodes": 4}
    inputs["configurations"].append(four)
    rows = _rows(model, inputs, tmp_path)
    assert rows["4 nodes"]["epoch_hours"] == pytest.approx(rows["gpu"]["epoch_hours"] / 4)
    assert rows["4 nodes"]["prepare_hours"] == pytest.approx(rows["gpu"]["prepare_hours"] / 4)


def test_the_committed_inputs_print_a_row_per_corpus_and_configuration(model: Any) -> None:
    printed = subprocess.run(
        [sys.executable, str(SCRIPT), "--inputs-table"], capture_output=True, text=True, check=True
    ).stdout
    inputs = model.load_inputs(model.DEFAULT_INPUTS)
    table = printed.split("\n\n")[0].splitlines()
    assert len(table) == 2 + len(inputs["corpora"]) * len(inputs["configurations"])
    names = {corpus["name"] for corpus in inputs["corpora"]}
    assert {"VoxCeleb2", "AVSpeech"} <= {name.split(",")[0] for name in names}
    assert {config["name"] for config in inputs["configurations"]} == {
        "64-core CPU box", "1 H100", "8 H100", "4 nodes x 8 H100",
    }  # fmt: skip
    for name, figure in inputs["figures"].items():  # every figure is traced: measured by a command, or a source
        assert ("command" in figure and "host" in figure) or "source" in figure, name
        assert name in printed


def test_a_missing_figure_is_one_line_naming_the_file_and_the_figure(tmp_path: Path) -> None:
    inputs = _inputs()
    del inputs["figures"]["train_gflop"]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(inputs))
    failed = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert failed.returncode != 0
    assert failed.stderr.strip().count("\n") == 0
    assert str(path) in failed.stderr and "figures.train_gflop.value" in failed.stderr

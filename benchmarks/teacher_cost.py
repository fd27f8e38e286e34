"""What one face embedding costs: a teacher's forward FLOPs per 224x224 face, and its CPU seconds per face.

``s2f prepare`` embeds every kept clip's aligned face with the teacher. ``prepare_throughput.py``
measures that stage for the teacher it runs (``dlib_resnet`` by default); the paper's teacher,
VGG-Face, is far larger, and its weights are not needed to know its cost: the layers are the same
with the seeded random weights used here (``random_init_seed``). Printed per face:

* GFLOP of one forward pass (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matmuls;
  a multiply-add counts 2), from which ``scale_cost.py`` derives the time on a GPU at a stated rate;
* CPU seconds of one forward pass in fp32 on one thread (``OMP_NUM_THREADS=1``, process CPU time, the
  fastest of ``--repeats`` batches), i.e. per core: other jobs on a shared machine do not inflate it.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/teacher_cost.py [--teacher vggface] [--batch-size 8] [--repeats 3]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from _table import format_table, load_average, machine
from _timing import CLOCKS, timed
from s2f import TEACHERS

__all__ = ["main", "measure"]

SEEDED = {"vggface": {"random_init_seed": 0}}


def measure(teacher_name: str, batch_size: int, repeats: int) -> dict[str, object]:
    """GFLOP and CPU seconds of one face through ``teacher_name``'s forward pass (fp32, this process's threads)."""
    teacher = TEACHERS.create(teacher_name, **SEEDED.get(teacher_name, {})).eval()
    faces = torch.rand(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 255
    cpu = torch.device("cpu")
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            teacher(faces[:1])
        teacher(faces)  # warm-up: oneDNN picks its kernels on the first call
        seconds = min(timed(lambda: teacher(faces), cpu, CLOCKS["cpu"]) for _ in range(repeats))
    return {
        "teacher": teacher_name,
        "gflop_per_face": counter.get_total_flops() / 1e9,
        "cpu_s_per_face": seconds / batch_size,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "load_average": load_average(),
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="vggface")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    result = measure(args.teacher, args.batch_size, args.repeats)
    host = result["machine"]
    assert isinstance(host, dict)
    print(f"# {host['cpu']} ({host['cores']} cores), torch {host['torch']}, {result['threads']} thread(s)", end="")
    print(f", load average {result['load_average']:.2f}")
    columns = [
        ("teacher", "teacher", "{}"),
        ("GFLOP/face", "gflop_per_face", "{:.2f}"),
        ("CPU s/face", "cpu_s_per_face", "{:.3f}"),
        ("batch", "batch_size", "{}"),
    ]
    print(format_table([result], columns))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

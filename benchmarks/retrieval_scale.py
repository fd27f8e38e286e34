"""Speech -> face retrieval at the paper's scale: a 5,000-face gallery, 50,000 queries, 4096-D (VGG-Face fc7).

``s2f.eval.recall_at_k`` ranks each chunk of queries with one matrix product and a comparison against the
query's own face (``s2f.eval.metrics.retrieval.own_ranks``), instead of a sort per query. Its floor is the matrix
product of all queries with the gallery, so it is timed against exactly that product in the same run:

- ``matmul``: ``unit_queries @ unit_gallery.T`` in one call (the [Q, G] scores, 1 GB in float32);
- ``recall_at_k cos`` (and any other ``--metrics``): the whole recall at K = 1, 2, 5, 10, 25, 50, 100;
- ``torchmetrics (before)``, with ``--torchmetrics-chunks N``: what ``s2f eval`` did before,
  ``RetrievalRecall`` over chunks of 1,024 queries, timed on N chunks and scaled to all of them (every
  chunk costs the same); about 45 s a chunk here, so it is off unless asked for.

Every run checks that the fast path gives exactly torchmetrics' recall on the first ``--check-queries``.

Peak memory is the process's resident high-water mark during the step, above what it held before (the
inputs: 50,000 x 4096 float32 queries are 0.8 GB); Linux resets the mark through ``/proc/self/clear_refs``.
Times are the fastest of ``--repeats``; threads are torch's default (the cores the machine has).

    python benchmarks/retrieval_scale.py                 # the paper's scale, float32: 1-2 minutes on 2 cores
    python benchmarks/retrieval_scale.py --quick         # 500 faces, 5,000 queries, 512-D: a smoke test
    python benchmarks/retrieval_scale.py --metrics cos,l2 --dtype float64 --json retrieval.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from _table import format_table, machine
from s2f.eval.metrics.retrieval import CHUNK_ELEMENTS, PAPER_KS, recall_at_k
from s2f.eval.metrics.similarity import pairwise_distance

__all__ = ["main", "peak_memory_mib", "torchmetrics_recall"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _status_kib(field: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", status.read_text(), flags=re.M)
    return int(found.group(1)) if found else None


def peak_memory_mib(step: Callable[[], Any]) -> tuple[Any, float, float | None]:
    """Runs ``step``; returns its result, its seconds, and its resident peak above the memory held before (MiB)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
        before = _status_kib("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return result, seconds, None if before is None or peak is None else (peak - before) / 1024


def torchmetrics_recall(queries, query_speakers, gallery, gallery_speakers, ks, chunk_size=1024) -> dict[str, float]:
    """Recall the way ``s2f eval`` computed it before: torchmetrics' RetrievalRecall over chunks of queries."""
    from torchmetrics.retrieval import RetrievalRecall

    position = {speaker: index for index, speaker in enumerate(gallery_speakers)}
    own = torch.tensor([position[s] for s in query_speakers])
    hits = dict.fromkeys(ks, 0)
    for start in range(0, len(queries), chunk_size):
        stop = min(start + chunk_size, len(queries))
        scores = 1.0 / (1.0 + pairwise_distance(queries[start:stop], gallery, "cos").double())
        target = torch.zeros_like(scores, dtype=torch.bool)
        target[torch.arange(stop - start), own[start:stop]] = True
        indexes = torch.arange(stop - start).unsqueeze(1).expand_as(scores)
        for k in ks:
            recall = RetrievalRecall(top_k=k)(scores.flatten(), target.flatten(), indexes=indexes.flatten())
            hits[k] += round(float(recall) * (stop - start))
    return {f"R@{k}": hits[k] / len(queries) for k in ks}


def _problem(gallery_size: int, queries: int, dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """A gallery of random faces and queries near their own face (R@K between chance and 100%)."""
    generator = torch.Generator().manual_seed(0)
    gallery = torch.randn(gallery_size, dim, generator=generator, dtype=dtype)
    own = torch.arange(queries) % gallery_size
    # Noise sqrt(dim) / 3 times the face's norm puts the own face's cosine about 3 standard deviations above
    # the other faces': often first, not always.
    noise = torch.randn(queries, dim, generator=generator, dtype=dtype)
    return gallery, own, gallery[own] + (dim**0.5 / 3) * noise


def _best_of(repeats: int, step: Callable[[], Any]) -> tuple[Any, float, float | None]:
    runs = [peak_memory_mib(step) for _ in range(repeats)]
    fastest = min(runs, key=lambda run: run[1])
    peaks = [run[2] for run in runs if run[2] is not None]
    return fastest[0], fastest[1], max(peaks) if peaks else None


def _time_matmul(queries: torch.Tensor, gallery: torch.Tensor, repeats: int) -> tuple[float, float | None]:
    """Seconds and peak memory of the one product of every unit query with every unit gallery face."""
    unit_queries, unit_gallery = F.normalize(queries, dim=-1), F.normalize(gallery, dim=-1)
    _, seconds, peak = _best_of(repeats, lambda: unit_queries @ unit_gallery.T)
    return seconds, peak


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=5000, help="faces in the gallery (default 5000)")
    parser.add_argument("--queries", type=int, default=50_000, help="queries (default 50000)")
    parser.add_argument("--dim", type=int, default=4096, help="embedding size (default 4096, VGG-Face fc7)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--metrics", default="cos", help="comma-separated: cos, l2, l1 (l1 is no matmul: slow)")
    parser.add_argument("--chunk-size", type=int, help="queries per chunk (default: s2f's, 2^24 distances)")
    parser.add_argument("--check-queries", type=int, default=64, help="queries checked against torchmetrics")
    parser.add_argument("--torchmetrics-chunks", type=int, default=0, help="chunks of 1024 queries to time the old way")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="500 faces, 5,000 queries, 512-D")
    parser.add_argument("--json", type=Path, help="write the machine and every row here")
    args = parser.parse_args(argv)
    if args.quick:
        args.gallery, args.queries, args.dim = 500, 5000, 512
    dtype = DTYPES[args.dtype]
    gallery, own, queries = _problem(args.gallery, args.queries, args.dim, dtype)
    gallery_speakers = [f"s{i}" for i in range(args.gallery)]
    query_speakers = [gallery_speakers[i] for i in own.tolist()]
    rows: list[dict[str, Any]] = []

    matmul_seconds, matmul_peak = _time_matmul(queries, gallery, args.repeats)
    rows.append({"step": "matmul (all scores at once)", "seconds": matmul_seconds, "peak_mib": matmul_peak})
    recalls = {}
    for metric in args.metrics.split(","):
        found, seconds, peak = _best_of(
            args.repeats,
            lambda metric=metric: recall_at_k(
                queries, query_speakers, gallery, gallery_speakers, metric=metric, dtype=dtype,
                chunk_size=args.chunk_size,
            ),
        )  # fmt: skip
        recalls[metric] = found
        rows.append({"step": f"recall_at_k {metric}", "seconds": seconds, "peak_mib": peak})
    ks = [k for k in PAPER_KS if k <= args.gallery]
    if args.torchmetrics_chunks:
        timed = slice(0, min(1024 * args.torchmetrics_chunks, args.queries))
        _, seconds, peak = _best_of(
            1, lambda: torchmetrics_recall(queries[timed], query_speakers[timed], gallery, gallery_speakers, ks)
        )
        scale = args.queries / timed.stop
        rows.append({"step": f"torchmetrics (before), {timed.stop} queries x{scale:.1f}", "seconds": seconds * scale,
                     "peak_mib": peak})  # fmt: skip
    subset = slice(0, min(args.check_queries, args.queries))
    reference = torchmetrics_recall(queries[subset], query_speakers[subset], gallery, gallery_speakers, ks)
    fast = recall_at_k(queries[subset], query_speakers[subset], gallery, gallery_speakers, ks=ks)
    for row in rows:
        row["vs_matmul"] = row["seconds"] / matmul_seconds
    identical = {k: fast[k] for k in reference} == reference
    columns = [("step", "step", "{}"), ("seconds", "seconds", "{:.2f}"), ("peak MiB", "peak_mib", "{:.0f}"),
               ("x matmul", "vs_matmul", "{:.2f}")]  # fmt: skip
    chunks = args.chunk_size or max(256, CHUNK_ELEMENTS // args.gallery)
    print(f"gallery {args.gallery} x queries {args.queries} x {args.dim}-D, {args.dtype}, chunks of {chunks} queries")
    print(format_table(rows, columns))
    first = next(iter(recalls.values()))
    print("R@K:", ", ".join(f"{k} {100 * v:.2f}%" for k, v in first.items() if k.startswith("R@")))
    print(f"the fast path equals torchmetrics on the first {subset.stop} queries: {identical}")
    print("machine:", machine())
    result = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
              "recall": recalls, "identical_to_torchmetrics": identical}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

"""dlib's face ResNet two ways: dlib's own ``compute_face_descriptor`` against the PyTorch port of the same file.

``dlib_resnet`` (the demo's teacher) embeds every aligned 150x150 chip with dlib's face-recognition
ResNet. :mod:`s2f.teachers.dlib_resnet_torch` is that network in PyTorch, its weights read from the
``.dat`` file dlib reads. One run, in one process, prints:

* the host: CPU model, cores, PyTorch's threads (dlib's network always computes on one core);
* ms per chip of dlib's network and of the PyTorch module, each at batch 1 and batch 32, as the
  median over ``--rounds`` interleaved rounds (each round embeds the same 32 chips once per
  contender), and each one's ratio to dlib's at batch 1;
* the agreement over ``--chips`` chips: the smallest cosine and the largest absolute difference
  between the two networks' 128 numbers;
* with ``--prepare N``: seconds of the demo's prepare stage (the default plan's world, seed 0: 900
  clips; ``s2f.prepare.prepare`` called as ``s2f demo`` calls it) with the PyTorch network embedding
  in the main process (``DlibResNet(workers=1)``, the default) and over worker processes
  (``workers=None``: one per core), N rounds taken in turn, the order swapped every other round.
  The world is synthesised once into ``--workdir`` (a minute or so) and reused when it is there.

The chips are dlib's own (HOG, 5-point landmarks, ``get_face_chip``, as :func:`dlib_workers.chip`
makes them) of real faces: the bundled portraits (scikit-image's astronaut, matplotlib's Grace
Hopper) and, when ``s2f.synth.face_sources`` has cached its bank, the aligned source photos, each
also mirrored and at a second scale; a quarter of them are chips of uniform noise. Nothing is
downloaded.

Usage:
    python benchmarks/dlib_embedding.py [--chips 64] [--rounds 5] [--threads N] [--json out.json]
    OMP_NUM_THREADS=1 python benchmarks/dlib_embedding.py   # one core each: the per-core ratio
    python benchmarks/dlib_embedding.py --prepare 2 --workdir /tmp/dlib-prepare   # + the prepare stage

Measured, on a 2-core AMD EPYC (AVX2), torch 2.14.1, dlib-bin 20.0.1 (benchmarks/README.md has the
tables): dlib's network 111-125 ms a chip at either batch size; the PyTorch module on one thread
(``OMP_NUM_THREADS=1``, load average 4.6) 16.6 ms at batch 1 and 9.5 ms at batch 32 (12.2x dlib's),
on two threads of an idle host (load 0.8) 12.3 and 5.6 ms (21.3x); agreement over 64 chips (48 real
faces, 16 noise) min cosine 0.9999998, max |diff| 4.8e-07. The demo's prepare stage took a median
49.6 s with the PyTorch network in the main process and 50.8 s over worker processes
(``--prepare 4``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _table import format_table, load_average, machine
from s2f.synth.face_sources import SourceBank, default_cache_dir
from s2f.synth.sample_videos import photo
from s2f.teachers import DlibResNet, dlib_workers
from s2f.teachers.dlib_workers import chip, default_models, embed_chips, load_models, load_torch_resnet

__all__ = ["agreement", "main", "real_chips", "time_prepare", "time_rounds"]

ROUND_CHIPS = 32


def _photos() -> list[np.ndarray]:
    """The bundled portraits, and the cached bank's aligned faces when there is one (never downloaded)."""
    images = [photo("astronaut"), photo("grace_hopper")]
    for bank_file in sorted(default_cache_dir().glob("bank-*.npz"))[:1]:
        images += list(SourceBank.read(bank_file).images)
    return images


def real_chips(count: int, seed: int = 0) -> np.ndarray:
    """``count`` aligned chips [count, 150, 150, 3]: three quarters real faces, a quarter noise."""
    models, rng = default_models(), np.random.default_rng(seed)
    variants = []
    for image in _photos():
        for view in (image, image[:, ::-1]):
            side = min(view.shape[:2])
            variants += [view, view[side // 8 : side - side // 8, side // 8 : side - side // 8]]
    faces = [variants[i % len(variants)] for i in range(count - count // 4)]
    noise = list(rng.integers(0, 256, (count // 4, 224, 224, 3), dtype=np.uint8))
    return np.stack([chip(models, np.ascontiguousarray(image), upsample=0) for image in faces + noise])


def agreement(ours: np.ndarray, dlib: np.ndarray) -> dict[str, float]:
    """The smallest cosine and the largest absolute difference between two sets of embeddings [N, 128]."""
    cosine = (ours * dlib).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(dlib, axis=1))
    return {"min_cosine": float(cosine.min()), "max_abs_diff": float(np.abs(ours - dlib).max())}


def time_rounds(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each contender's call in each round; the contenders take turns within a round."""
    for embed in contenders.values():
        embed()  # warm-up: oneDNN picks its kernels on the first call
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, embed in contenders.items():
            start = time.perf_counter()
            embed()
            seconds[name].append(time.perf_counter() - start)
            for key in list(dlib_workers._WORKERS):  # a fresh pool each round, as each `s2f demo` starts one
                dlib_workers._close(*key)
    return seconds


def time_prepare(rounds: int, workdir: Path) -> dict[str, list[float]]:
    """Seconds of the demo's prepare stage, embedding in the main process and over workers, taken in turn."""
    from s2f.demo.plans import DEMO_PLANS
    from s2f.prepare import prepare
    from s2f.synth import WorldSpec, synthesize_world

    plan = DEMO_PLANS["default"]
    spec = WorldSpec(identities=plan.identities, clips_per_identity=plan.clips_per_identity, seconds=plan.seconds,
                     seed=0, carrier=plan.carrier, train_speech_share=plan.train_speech_share,
                     train_speech_clips=plan.train_speech_clips)  # fmt: skip
    world = synthesize_world(workdir / "world", spec, progress=False)
    teachers = {"prepare, this process": DlibResNet(workers=1), "prepare, worker processes": DlibResNet(workers=None)}
    seconds: dict[str, list[float]] = {name: [] for name in teachers}
    for round_index in range(rounds):
        # A, B, then B, A: the host's drift (a cache warming, a job ending) favours neither.
        order = list(teachers.items()) if round_index % 2 == 0 else list(teachers.items())[::-1]
        for name, teacher in order:
            out = workdir / "shards"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            prepare(world.tasks(), out, teacher, max_seconds=plan.seconds, min_seconds=min(plan.seconds, 3.0),
                    accelerator="cpu", devices=1, progress=False)  # fmt: skip
            seconds[name].append(time.perf_counter() - start)
            for key in list(dlib_workers._WORKERS):  # a fresh pool each round, as each `s2f demo` starts one
                dlib_workers._close(*key)
            print(f"{name}: {seconds[name][-1]:.1f} s (load average {load_average():.2f})", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, default=64, help="chips the agreement is measured on")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, help="PyTorch's threads (default: its own choice)")
    parser.add_argument("--prepare", type=int, default=0, metavar="N", help="rounds of the demo's prepare stage")
    parser.add_argument("--workdir", type=Path, help="folder for --prepare's world and shards (default: a temp one)")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = default_models()
    load_models(models), load_torch_resnet(models)
    chips = real_chips(max(args.chips, ROUND_CHIPS))
    network = load_torch_resnet(models)
    round_chips = torch.from_numpy(chips[:ROUND_CHIPS]).permute(0, 3, 1, 2)

    def torch_embed(batch: int) -> None:
        with torch.inference_mode():
            for part in round_chips.split(batch):
                network(part)

    def dlib_embed(batch: int) -> None:
        for start in range(0, ROUND_CHIPS, batch):
            embed_chips(models, list(chips[start : start + batch]), backend="dlib")

    contenders = {
        ("dlib", 1): lambda: dlib_embed(1),
        ("dlib", 32): lambda: dlib_embed(32),
        ("torch", 1): lambda: torch_embed(1),
        ("torch", 32): lambda: torch_embed(32),
    }
    seconds = time_rounds({f"{name} batch {batch}": fn for (name, batch), fn in contenders.items()}, args.rounds)
    baseline = statistics.median(seconds["dlib batch 1"])
    rows = [
        {
            "network": name,
            "ms_per_chip": 1e3 * statistics.median(times) / ROUND_CHIPS,
            "ms_min_max": f"{1e3 * min(times) / ROUND_CHIPS:.1f}-{1e3 * max(times) / ROUND_CHIPS:.1f}",
            "speedup": baseline / statistics.median(times),
        }
        for name, times in seconds.items()
    ]
    dlib_vectors = embed_chips(models, list(chips[: args.chips]), backend="dlib")
    with torch.inference_mode():
        ours = torch.cat([network(p) for p in torch.from_numpy(chips[: args.chips]).permute(0, 3, 1, 2).split(32)])
    agrees = agreement(ours.numpy(), dlib_vectors)

    host = machine()
    print(f"# {host['cpu']} ({host['cores']} cores, {host['cpu_capability']}), torch {host['torch']} on "
          f"{torch.get_num_threads()} thread(s), dlib on 1; load average {load_average():.2f}")  # fmt: skip
    columns = [
        ("network", "network", "{}"),
        ("ms/chip (median)", "ms_per_chip", "{:.1f}"),
        ("min-max", "ms_min_max", "{}"),
        ("x dlib batch 1", "speedup", "{:.1f}"),
    ]
    print(format_table(rows, columns))
    print(f"agreement over {args.chips} chips: min cosine {agrees['min_cosine']:.7f}, "
          f"max |diff| {agrees['max_abs_diff']:.2e}")  # fmt: skip
    result = {"rows": rows, "seconds": seconds, "rounds": args.rounds, "chips": args.chips, **agrees, "machine": host}
    if args.prepare:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="s2f-dlib-prepare-"))
        result["prepare_seconds"] = stages = time_prepare(args.prepare, workdir)
        for name, times in stages.items():
            print(f"{name}: median {statistics.median(times):.1f} s over {len(times)} rounds")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

"""Every registered voice encoder side by side: size, FLOPs, speed on this machine, and quality on a toy corpus.

For each encoder (plug-ins included):

- **params**: trainable and frozen parameters of the registered variant.
- **GFLOP/clip**: forward FLOPs of one 6 s clip ([2, 598, 257]), counted once with
  ``FlopCounterMode`` (matmuls and convolutions; as in ``encoder_throughput.py``).
- **train clips/s**: fp32 training steps on 6 s clips (forward, normalised L2, backward, Adam
  with the paper's settings); **infer clips/s**: eval-mode forward passes under ``no_grad``.
  Both are the best of their timed repeats: other work on the cores only ever slows a run down.
- **val angle**: the mean angle, in degrees, between predicted and true teacher embeddings of
  held-out speakers, before training and after a few epochs of the full training system (both
  loss terms, the paper's optimiser) on a toy corpus of real wav + jpg files turned into shards.
  Only encoders whose embedding matches the 64-D tiny teacher take part, i.e. the tiny variants:
  the full-size ones need VGG-Face's weights, and minutes of CPU training on 64 clips would say
  nothing about them. The angle a constant prediction (the mean training embedding) reaches is
  printed with the table: an encoder that hears nothing of the face stays near it.

The toy corpus only checks that an encoder can learn *something* about a face from a voice;
small differences between encoders on it are noise, not a ranking.

Usage:
    python benchmarks/compare_encoders.py [--tiny-only] [--quick] [--models s2f_cnn_tiny,s2f_conformer*]
        [--speed-batch N] [--warmup N] [--repeats N] [--epochs N] [--speakers N] [--seeds N] [--json out.json]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn as nn

from _table import format_table as throughput_table
from _table import machine
from encoder_throughput import count_flops, time_train_step
from s2f import ENCODERS, TEACHERS
from s2f.audio import SpectrogramFrontend
from s2f.data import build_shards_from_pairs, iter_records
from s2f.model.angles import angles_deg
from s2f.synth.toy import make_toy_corpus

__all__ = ["QualityCorpus", "Row", "main", "time_inference"]

CLIP_SECONDS = 6.0
TEACHER = "vggface_tiny"
# (batch, warm-up, timed repeats) for throughput; full-size models take seconds a step on a CPU.
TINY_TIMING, FULL_TIMING, QUICK_TIMING = (8, 1, 3), (2, 1, 2), (2, 0, 1)
QUIET = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    "Your `IterableDataset` has `__len__` defined",
    r"Found \d+ module\(s\) in eval mode",
    "The '(train|val)_dataloader' does not have many workers",
)
COLUMNS = (
    ("model", "model", "{}"),
    ("params M", "params_m", "{:.2f}"),
    ("embed", "embed_dim", "{}"),
    ("GFLOP/clip", "gflop_per_clip", "{:.3g}"),
    ("batch", "batch", "{}"),
    ("train clips/s", "train_clips_per_s", "{:.3g}"),
    ("infer clips/s", "infer_clips_per_s", "{:.3g}"),
    ("val angle start", "val_angle_start", "{:.1f}"),
    ("val angle end", "val_angle_end", "{:.1f}"),
)


@dataclass
class Row:
    """One encoder; the quality fields are ``None`` for encoders the tiny teacher cannot train."""

    model: str
    params_m: float
    embed_dim: int
    gflop_per_clip: float
    batch: int
    train_clips_per_s: float
    infer_clips_per_s: float
    val_angle_start: float | None = None
    val_angle_end: float | None = None
    val_angle_end_per_seed: list[float] | None = None
    train_seconds: float | None = None


def time_inference(model: nn.Module, spec: torch.Tensor, *, warmup: int, repeats: int) -> list[float]:
    """Seconds per eval-mode forward pass on ``spec`` under ``no_grad``, after ``warmup`` untimed ones."""
    model.eval()
    times = []
    with torch.no_grad():
        for index in range(warmup + repeats):
            start = time.perf_counter()
            model(spec)
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times


def measure_speed(name: str, *, batch: int, warmup: int, repeats: int) -> Row:
    """Parameters, FLOPs per 6 s clip, and train/inference throughput of one registered encoder."""
    torch.manual_seed(0)
    encoder = ENCODERS.create(name).train()
    frontend = SpectrogramFrontend(**encoder.frontend_config())
    with torch.no_grad():
        spec = frontend(torch.randn(batch, round(CLIP_SECONDS * frontend.sample_rate)) * 0.1)
    target = torch.randn(batch, encoder.embed_dim)
    forward_flops, _ = count_flops(encoder, spec[:1], target[:1])
    train = time_train_step(encoder, spec, target, "fp32", warmup=warmup, steps=repeats)
    infer = time_inference(encoder, spec, warmup=warmup, repeats=repeats)
    return Row(
        model=name,
        params_m=sum(p.numel() for p in encoder.parameters()) / 1e6,
        embed_dim=encoder.embed_dim,
        gflop_per_clip=forward_flops / 1e9,
        batch=batch,
        train_clips_per_s=batch / min(train),
        infer_clips_per_s=batch / min(infer),
    )


class QualityCorpus:
    """A toy corpus written once as real files and shards, shared by every encoder's training run.

    Args:
        root: Folder for the media and the shards.
        speakers: Speakers in the corpus; a quarter each go to val and test when there are 8 or more.
        clips_per_speaker: Clips of each speaker.
        seed: Seed of the corpus.
    """

    def __init__(self, root: Path, *, speakers: int, clips_per_speaker: int = 4, seed: int = 0) -> None:
        held_out = max(1, speakers // 4)
        pairs = make_toy_corpus(root / "media", speakers, clips_per_speaker, seed=seed, held_out=held_out)
        self.shards = root / "shards"
        build_shards_from_pairs(pairs, self.shards, TEACHERS.create(TEACHER), overwrite=True)
        train = np.stack([r.embedding for r in iter_records(self.shards, "train")]).astype(np.float64)
        val = np.stack([r.embedding for r in iter_records(self.shards, "val")]).astype(np.float64)
        self.embed_dim = train.shape[1]
        self.train_clips, self.val_clips = len(train), len(val)
        mean_face = torch.from_numpy(train.mean(axis=0)).expand(len(val), -1)
        self.baseline_angle = float(angles_deg(mean_face, torch.from_numpy(val)).mean())

    def train(self, name: str, *, epochs: int, seed: int, seconds: float, batch_size: int) -> tuple[float, float]:
        """Val angle (degrees) of encoder ``name`` before and after ``epochs`` of training."""
        from s2f.data import S2FDataModule
        from s2f.train import Speech2FaceSystem

        L.seed_everything(seed, verbose=False)
        system = Speech2FaceSystem(name, TEACHER)
        data = S2FDataModule(str(self.shards), batch_size=batch_size, clip_seconds=seconds, seed=seed)
        trainer = L.Trainer(
            accelerator="cpu",
            max_epochs=epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            check_val_every_n_epoch=epochs,
        )
        (before,) = trainer.validate(system, datamodule=data, verbose=False)
        trainer.fit(system, datamodule=data)
        (after,) = trainer.validate(system, datamodule=data, verbose=False)
        return float(before["val/angle_deg"]), float(after["val/angle_deg"])


def format_table(rows: Sequence[Row]) -> str:
    """The comparison as a plain-text table; "-" where a figure was not measured."""
    return throughput_table(rows, COLUMNS)


def select_models(patterns: str | None, *, tiny_only: bool) -> list[str]:
    """Registered encoder names matching comma-separated shell patterns (all of them by default)."""
    names = ENCODERS.list(tiny=True if tiny_only else None)
    if not patterns:
        return names
    chosen = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns.split(","))]
    if not chosen:
        raise SystemExit(f"no registered encoder matches {patterns!r}; known: {', '.join(names)}")
    return chosen


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated names or shell patterns (default: every registered encoder)")
    parser.add_argument("--tiny-only", action="store_true", help="only the tiny variants (skips the slow full models)")
    parser.add_argument("--quick", action="store_true", help="tiny variants, one timed repeat, a small short run")
    parser.add_argument("--speed-batch", type=int, help="clips per timed step (default: 8 tiny, 2 full-size)")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (default 1)")
    parser.add_argument("--repeats", type=int, help="timed steps, best one kept (default: 3 tiny, 2 full-size)")
    parser.add_argument("--epochs", type=int, help="training epochs for the quality column (default 5, quick 2)")
    parser.add_argument("--speakers", type=int, help="speakers in the toy corpus (default 16, quick 8)")
    parser.add_argument("--seeds", type=int, default=1, help="training runs per encoder, averaged (default 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length for the quality runs (default 3)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per step in the quality runs (default 8)")
    parser.add_argument("--no-quality", action="store_true", help="skip the training runs")
    parser.add_argument("--workdir", type=Path, help="where the toy corpus goes (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the machine, settings and rows here")
    args = parser.parse_args(argv)
    args.tiny_only = args.tiny_only or args.quick
    args.epochs = args.epochs or (2 if args.quick else 5)
    args.speakers = args.speakers or (8 if args.quick else 16)
    return args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Runs the comparison, prints the table and returns its rows."""
    args = parse_args(argv)
    # One table, not Lightning's banner and notices for every training run.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for noise in QUIET:
        warnings.filterwarnings("ignore", message=noise)
    names = select_models(args.models, tiny_only=args.tiny_only)
    info = machine()
    print(
        f"# {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} threads, "
        f"fp32, {CLIP_SECONDS:g} s clips for FLOPs and speed; load average {info['load_average']}"
    )
    rows = []
    for name in names:
        batch, warmup, repeats = QUICK_TIMING if args.quick else TINY_TIMING if ENCODERS.get(name).tiny else FULL_TIMING
        rows.append(
            measure_speed(
                name,
                batch=args.speed_batch or batch,
                warmup=warmup if args.warmup is None else args.warmup,
                repeats=args.repeats or repeats,
            )
        )

    corpus = None
    if not args.no_quality:
        with tempfile.TemporaryDirectory(prefix="s2f-compare-") as scratch:
            root = args.workdir or Path(scratch)
            corpus = QualityCorpus(root, speakers=args.speakers)
            for row in rows:
                if row.embed_dim != corpus.embed_dim:
                    continue
                start = time.perf_counter()
                runs = [
                    corpus.train(
                        row.model, epochs=args.epochs, seed=seed, seconds=args.seconds, batch_size=args.batch_size
                    )
                    for seed in range(args.seeds)
                ]
                row.train_seconds = time.perf_counter() - start
                row.val_angle_start = statistics.mean(before for before, _ in runs)
                row.val_angle_end = statistics.mean(after for _, after in runs)
                row.val_angle_end_per_seed = [after for _, after in runs]

    print(format_table(rows))
    if corpus is not None:
        print(
            f"# quality: {args.epochs} epochs on {corpus.train_clips} toy clips of {args.seconds:g} s "
            f"({args.speakers} speakers, teacher {TEACHER}), {corpus.val_clips} held-out clips, "
            f"{args.seeds} seed(s); a constant prediction (the mean training embedding) scores "
            f"{corpus.baseline_angle:.1f} deg"
        )
    print(f"# load average at the end: {machine()['load_average']}")
    if args.json:
        report = {
            "machine": info,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "baseline_angle": None if corpus is None else corpus.baseline_angle,
            "rows": [asdict(row) for row in rows],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

"""The pretrained GE2E front end (frozen) against the demo's conformer, on the synthetic world's val split.

Both encoders predict dlib's 128-D face embedding from the same shards of one ``s2f demo`` world, are
trained on its train split only, and are scored by the same ``s2f.eval.evaluate`` call on its *val*
split (26 speakers with the default plan; the test split is never read):

- **conformer**: the model ``s2f demo`` saved in ``DEMO/model`` (the demo plan's ``s2f_conformer_tiny``
  with ``frequency_subsampling=2``, 45 epochs of 3 s windows, calibrated on the train split).
- **ge2e**: ``s2f_ge2e`` (resemblyzer's pretrained GE2E, frozen) with its head (batch norm, FC 512,
  ReLU, FC 128) trained with the demo plan's loss and optimiser (the normalised L2 term plus the
  same term measured from the mean training face; Adam at 1e-3, batch 16, x0.95 per epoch, 45
  epochs), starting at the mean face as the training system does, then calibrated the same way.
  The front end is frozen, so its d-vectors are computed once, for one 3 s window of every
  training clip (drawn with the seed), and the head trains on them: the same computation as
  ``Speech2FaceSystem`` with a frozen front end, except that the system draws a new window every
  epoch. On two CPU cores that is minutes instead of hours (GE2E's LSTM costs about 0.5 GFLOP per
  1.6 s partial, run sequentially over 160 frames).

The decoder is the demo's, so both saved models draw faces the same way; faces are not scored here
(``craniofacial``, ``demographics`` and ``face_identity`` are off): the figures are retrieval
(R@1, R@10 over identity-mean galleries of the val speakers), the angle to the teacher's embedding,
and same-speaker consistency, as ``s2f eval`` prints them.

Usage:
    s2f demo --out runs/demo --seed 0
    python benchmarks/compare_frontends.py --demo runs/demo [--seed 0] [--epochs N] [--json out.json]

The head's training follows the plan that ``DEMO/demo.json`` records (``s2f demo --quick`` too).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2f import ENCODERS, Speech2Face
from s2f.audio import SpectrogramFrontend
from s2f.data import iter_records, read_manifest
from s2f.demo import DEMO_PLANS, DemoPlan
from s2f.eval import evaluate
from s2f.model.calibration import fit_calibration
from s2f.train.losses import Speech2FaceLoss

__all__ = ["main", "train_head", "training_windows"]

SPLIT = "val"  # settings may be chosen on it; the test split is left for reported figures


def demo_plan(demo: Path) -> DemoPlan:
    """The plan ``s2f demo`` ran in ``demo`` (its ``demo.json``), or the default plan."""
    record = demo / "demo.json"
    if not record.is_file():
        return DEMO_PLANS["default"]
    plan = json.loads(record.read_text())["plan"]
    if "encoder_recipe" not in plan:
        raise SystemExit(f"{record}: written by an s2f demo from before its plans were recipes; run `s2f demo` again")
    return DemoPlan.from_record(plan)


def training_windows(shards: Path, seconds: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One window of ``seconds`` at a seeded random start of every training clip, and the clips' teacher
    embeddings: waves [N, samples] (float, 16 kHz) and embeddings [N, D]."""
    rng = np.random.default_rng(seed)
    length = round(seconds * 16_000)
    waves, embeddings = [], []
    for record in iter_records(shards, "train"):
        audio = record.audio.astype(np.float32) / 32768.0
        if len(audio) < length:
            audio = np.resize(audio, length)  # loop-repeated, as the data module does
        start = int(rng.integers(0, len(audio) - length + 1))
        waves.append(torch.from_numpy(audio[start : start + length].copy()))
        embeddings.append(torch.from_numpy(record.embedding.astype(np.float32)))
    return torch.stack(waves), torch.stack(embeddings)


@torch.no_grad()
def dvectors(encoder: Any, waves: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """The frozen front end's d-vectors [N, 256] of waves [N, samples]."""
    frontend = SpectrogramFrontend(**encoder.frontend_config())
    encoder.eval()
    return torch.cat([encoder.dvector(frontend(waves[i : i + batch])) for i in range(0, len(waves), batch)])


def train_head(
    encoder: Any, features: torch.Tensor, targets: torch.Tensor, plan: DemoPlan, epochs: int, seed: int
) -> list[float]:
    """Trains ``encoder.head`` on fixed d-vectors with the demo plan's loss and optimiser; returns the epoch losses."""
    torch.manual_seed(seed)
    center = targets.mean(dim=0)
    encoder.start_from(center)  # as Speech2FaceSystem(center_embeddings=True) does before its first step
    model = {name: plan.encoder_setting(f"model.init_args.{name}") for name in ("lambda_l2", "lambda_l1", "lr", "eps")}
    loss_fn = Speech2FaceLoss(lambda_l2=model["lambda_l2"], lambda_l1=model["lambda_l1"])
    betas = tuple(plan.encoder_setting("model.init_args.betas", (0.5, 0.999)))
    optimizer = torch.optim.Adam(encoder.head.parameters(), lr=model["lr"], betas=betas, eps=model["eps"])
    # One decay per epoch, as the demo's recipes (lr_decay_epochs: 1).
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, plan.encoder_setting("model.init_args.lr_decay"))
    batch_size = plan.encoder_setting("data.init_args.batch_size")
    encoder.head.train()
    losses = []
    for _ in range(epochs):
        order, total = torch.randperm(len(features)), 0.0
        batches = [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
        for index in batches:
            loss = loss_fn(encoder.head(features[index]), targets[index], None, None, center).total
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        schedule.step()
        losses.append(total / len(batches))
    encoder.eval()
    return losses


def ge2e_models(
    shards: Path, demo_model: Speech2Face | None, plan: DemoPlan, heads: list[int | None], epochs: int, seed: int
) -> tuple[dict[str, Speech2Face], dict[str, Any]]:
    """The frozen GE2E front end with each head (FC ``width`` -> ReLU -> FC, or linear for None) trained on
    the train split's d-vectors (computed once) and calibrated there, beside the demo's decoder (if any)."""
    manifest = read_manifest(shards)
    teacher = demo_model.teacher if demo_model else {"name": manifest.teacher, "embed_dim": manifest.embed_dim}
    train_seconds = plan.encoder_setting("data.init_args.clip_seconds")
    waves, targets = training_windows(shards, train_seconds, seed)
    start = time.perf_counter()
    features = dvectors(ENCODERS.create("s2f_ge2e", hidden_dim=None, embed_dim=1), waves)
    info: dict[str, Any] = {"train_clips": len(waves), "dvector_seconds": round(time.perf_counter() - start, 1)}
    models = {}
    for width in heads:
        encoder = ENCODERS.create("s2f_ge2e", hidden_dim=width, embed_dim=teacher["embed_dim"])
        losses = train_head(encoder, features, targets, plan, epochs, seed)
        with torch.no_grad():
            fitted_on = {"split": "train", "seconds": train_seconds}
            calibration = fit_calibration(encoder.head(features), targets, fitted_on)
        decoder = demo_model.decoder if demo_model else None
        name = f"ge2e frozen + {'linear head' if width is None else f'FC {width} head'}"
        models[name] = Speech2Face(
            encoder, decoder, clip_seconds=plan.seconds, teacher=teacher, calibration=calibration
        ).eval()
        info[f"{name}: loss"] = [round(losses[0], 4), round(losses[-1], 4)]
    return models, info


def _row(name: str, model: Speech2Face, metrics: dict[str, Any]) -> dict[str, Any]:
    trainable = sum(p.numel() for p in model.encoder.parameters() if p.requires_grad)
    row: dict[str, Any] = {"model": name, "trainable_M": round(trainable / 1e6, 3)}
    for key, values in metrics["similarity"].items():
        row[f"angle {key}"] = round(values["angle_deg"]["mean"], 2)
    for key, by_metric in metrics["retrieval"].items():
        cos = by_metric["cos"]
        row[f"gallery {key}"] = int(cos["gallery_size"])
        for k in (1, 10):
            row[f"R@{k} {key}"] = round(100 * cos[f"R@{k}"], 1)
    for key, values in metrics["consistency"].items():
        if "rank1" in values:
            row[f"same-speaker rank-1 {key}"] = round(100 * values["rank1"], 1)
    return row


def _own_voices(voices: Path, candidates: list[tuple[str, Speech2Face | None]], out: Path) -> None:
    """``own_voice.py report`` on the development voices for each model (the held-out voices are never read
    here: this benchmark is for choosing), each model's faces and JSON in its own folder under ``out``."""
    sys.path.insert(0, str(Path(__file__).parent))
    import own_voice

    for name, model in candidates:
        if model is not None:
            print(f"\n{name}, development voices:")
            own_voice.report(voices, model, "dev", out / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="an `s2f demo` folder (shards/, model/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the windows, the head and the galleries")
    parser.add_argument("--epochs", type=int, help="epochs of the GE2E head (default: the demo plan's)")
    parser.add_argument("--seconds", type=float, nargs="+", help="input lengths (default: the demo plan's)")
    parser.add_argument("--heads", nargs="+", default=["512"], help="hidden widths of the GE2E heads ('none': linear)")
    parser.add_argument("--json", type=Path, help="write the rows and the summaries here")
    parser.add_argument(
        "--voices", type=Path, help="then report every model on this real-voice set's development voices (own_voice.py)"
    )
    args = parser.parse_args(argv)
    plan = demo_plan(args.demo)
    epochs = args.epochs or plan.encoder_setting("trainer.max_epochs")
    seconds = tuple(args.seconds or plan.eval_seconds)
    shards = args.demo / "shards"
    saved = args.demo / "model"
    conformer = Speech2Face.from_pretrained(saved) if (saved / "config.json").is_file() else None
    if conformer is None:
        print(f"no conformer: {saved} is missing (`s2f demo --out {args.demo}` writes it); measuring ge2e alone")
    heads = [None if width.lower() == "none" else int(width) for width in args.heads]
    ge2e, info = ge2e_models(shards, conformer, plan, heads, epochs, args.seed)
    print(json.dumps(info), flush=True)
    rows, summaries = [], {}
    candidates = [("conformer (s2f demo)", conformer), *ge2e.items()]
    for name, model in [(name, model) for name, model in candidates if model is not None]:
        result = evaluate(
            model, shards, split=SPLIT, seconds=seconds, seed=args.seed, craniofacial="off",
            demographics="off", face_identity="off", progress=False, title=f"{name}, {SPLIT} split",
        )  # fmt: skip
        summaries[name] = result.summary()
        print(summaries[name], flush=True)
        rows.append(_row(name, model, result.metrics))
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(column, "")) for column in columns) + " |")
    if args.voices:
        _own_voices(args.voices, candidates, args.demo / "own-voice")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summaries": summaries, "ge2e": info}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

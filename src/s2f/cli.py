"""The ``s2f`` command.

Training subcommands are Lightning's own, read from YAML recipes with ``class_path`` /
``init_args`` and stackable ``--config`` files::

    s2f fit --config recipes/paper.yaml --data.data_dir shards/
    s2f fit --config recipes/paper.yaml --config recipes/debug.yaml --print_config
    s2f validate|test|predict --config RECIPE --ckpt_path CKPT

The rest are s2f's::

    s2f demo [--out DIR] [--quick]                   the whole pipeline on a toy corpus, in about a minute
    s2f prepare --pairs PAIRS.csv --out SHARDS       audio + face image pairs -> training shards
    s2f run RECIPE [RECIPE ...] [--key value ...]    fit with stacked recipes (what `lightning run` would be)
    s2f predict --model DIR_OR_CKPT voice.wav [...]  face embedding (and image) of audio files
    s2f export CKPT OUT_DIR                          a training checkpoint -> config.json + model.safetensors
    s2f models [PATTERN]                             what is registered
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import S2FError

__all__ = ["main"]

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s2f`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "predict" and any(a in ("--model", "-m") or a.startswith("--model=") for a in args):
            return _predict_audio(args[1:])
        if args and args[0] == "run":
            return _run_lightning(_recipes_to_fit(args[1:]))
        if args and args[0] == "export":
            return _export(args[1:])
        if args and args[0] == "models":
            return _models(args[1:])
        if args and args[0] == "demo":
            return _demo(args[1:])
        if args and args[0] == "prepare":
            return _prepare(args[1:])
        if (args and args[0] in ("-h", "--help")) or not args:
            print(__doc__)
            return 0 if args else 2
        return _run_lightning(args)
    except S2FError as exc:
        print(f"s2f: error: {exc}", file=sys.stderr)
        return 2


def _run_lightning(args: list[str]) -> int:
    from .lit.cli import run_lightning_cli

    run_lightning_cli(args)
    return 0


def _recipes_to_fit(args: list[str]) -> list[str]:
    recipes = []
    while args and not args[0].startswith("-"):
        recipes.append(args.pop(0))
    if not recipes:
        raise SystemExit("s2f run: give at least one recipe, e.g. `s2f run recipes/debug.yaml --data.data_dir shards/`")
    stacked = [part for recipe in recipes for part in ("--config", recipe)]
    return ["fit", *stacked, *args]


def _predict_audio(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="s2f predict", description="Predict the face behind each voice.")
    parser.add_argument("--model", "-m", required=True, help="saved model folder, .ckpt, or hf-hub:ORG/NAME")
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, mp4, ...)")
    parser.add_argument("--output", "-o", help="write embeddings (.npy/.json) or the face image (.png/.jpg)")
    parser.add_argument("--seconds", type=float, help="clip length (default: the model's, 6 s in the paper)")
    parser.add_argument("--device", default="cpu")
    options = parser.parse_args(args)

    import json

    import numpy as np

    from .pipeline import Speech2Face

    model = Speech2Face.from_pretrained(options.model, device=options.device)
    predictions = model.predict(list(options.audio), seconds=options.seconds)
    embeddings = np.stack([p.embedding.numpy() for p in predictions])
    for path, prediction in zip(options.audio, predictions, strict=True):
        e = prediction.embedding
        print(f"{path}: {e.numel()}-D embedding, norm {e.norm():.3f}, first {', '.join(f'{v:.3f}' for v in e[:4])} ...")
    if options.output:
        out = Path(options.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".npy":
            np.save(out, embeddings)
        elif out.suffix == ".json":
            out.write_text(json.dumps({p: e.tolist() for p, e in zip(options.audio, embeddings, strict=True)}))
        elif out.suffix.lower() in (".png", ".jpg", ".jpeg"):
            if predictions[0].image is None:
                raise S2FError(f"{options.model} has no face decoder, so there is no image; write .npy or .json")
            for index, prediction in enumerate(predictions):
                target = out if len(predictions) == 1 else out.with_stem(f"{out.stem}_{index}")
                if prediction.image is not None:
                    prediction.image.save(target)
        else:
            raise S2FError(f"{out}: write .npy, .json, or (with a decoder) .png/.jpg")
        print(f"wrote {out}")
    return 0


def _export(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="s2f export", description="Export a training checkpoint as a saved model.")
    parser.add_argument("checkpoint", help="a .ckpt written by `s2f fit`")
    parser.add_argument("output", help="folder to write config.json + model.safetensors into")
    options = parser.parse_args(args)
    from .pipeline import Speech2Face

    folder = Speech2Face.from_checkpoint(options.checkpoint).save_pretrained(options.output)
    print(f"wrote {folder}/config.json and model.safetensors")
    return 0


def _demo(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="s2f demo", description="Run the whole pipeline on a toy corpus.")
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(args)
    from .demo import run_demo

    run_demo(options.out, quick=options.quick, seed=options.seed)
    return 0


def _prepare(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="s2f prepare", description="Build training shards from media.")
    parser.add_argument("--pairs", required=True, help="CSV with speaker_id,audio,face[,clip_id,split,...] columns")
    parser.add_argument("--out", required=True, help="shard folder to create")
    parser.add_argument("--teacher", default="vggface", help="registered teacher name (default: vggface)")
    parser.add_argument("--teacher-weights", help="weights file of the teacher (VGG-Face needs one)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=6.0, help="audio kept per clip (the paper: 6 s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing shard folder")
    options = parser.parse_args(args)
    from ._registry import TEACHERS
    from .data import build_shards_from_pairs

    kwargs = {"weights": options.teacher_weights} if options.teacher_weights else {}
    teacher = TEACHERS.create(options.teacher, **kwargs)
    manifest = build_shards_from_pairs(
        options.pairs,
        options.out,
        teacher,
        batch_size=options.batch_size,
        max_seconds=options.max_seconds,
        overwrite=options.overwrite,
    )
    for split, info in manifest.splits.items():
        print(f"{split:>5}: {info.clips} clips from {info.speakers} speakers")
    print(f"wrote {options.out} (teacher {manifest.teacher}, {manifest.embed_dim}-D)")
    return 0


def _models(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="s2f models", description="List registered models.")
    parser.add_argument("pattern", nargs="?", default="*")
    options = parser.parse_args(args)
    from ._registry import DECODERS, ENCODERS, TEACHERS

    rows = [
        (entry.name, registry.kind, "tiny" if entry.tiny else "", entry.source, entry.summary)
        for registry in (ENCODERS, TEACHERS, DECODERS)
        for entry in registry.entries()
        if entry.name in registry.list(options.pattern)
    ]
    header = ("name", "kind", "size", "source", "description")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

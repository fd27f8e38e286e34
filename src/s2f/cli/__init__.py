"""The ``s2f`` command.

Training subcommands are Lightning's own, read from YAML recipes with ``class_path`` /
``init_args`` and stackable ``--config`` files::

    s2f fit --config recipes/paper.yaml --data.data_dir shards/
    s2f fit --config recipes/paper.yaml --config recipes/debug.yaml --print_config
    s2f validate|test|predict --config RECIPE --ckpt_path CKPT

The rest are s2f's::

    s2f demo [--out DIR] [--quick]                   world -> shards -> fit -> eval -> report.html, in minutes
    s2f prepare --avspeech|--voxceleb|--folder|--manifest|--pairs ... --out SHARDS
                                                     media -> training shards (resumable; rejects listed)
    s2f synth --out DIR [--identities N] [--quick]   a synthetic audio-visual world (mp4 + manifest) to prepare
    s2f eval --model DIR --data SHARDS [--out DIR]   the paper's evaluation: metrics.json + report.html
    s2f run RECIPE [RECIPE ...] [--key value ...]    fit with stacked recipes (what `lightning run` would be)
    s2f predict --model DIR_OR_CKPT voice.wav [...]  face embedding (and image) of audio files
    s2f export CKPT OUT_DIR [--decoder DECODER]      a training checkpoint -> config.json + model.safetensors
    s2f models [PATTERN] [--kind K] [--tiny|--full]  what is registered: kind, parameters, embedding, package
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
        if args and args[0] == "eval":
            from .eval.command import main as eval_main

            return eval_main(args[1:])
        if args and args[0] == "synth":
            from .data.synth.command import main as synth_main

            return synth_main(args[1:])
        if (args and args[0] in ("-h", "--help")) or not args:
            print(__doc__)
            return 0 if args else 2
        return _run_lightning(args)
    except S2FError as exc:
        print(f"s2f: error: {exc}", file=sys.stderr)
        return 2


def _run_lightning(args: list[str]) -> int:
    from .train.lightning_cli import run_lightning_cli

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
    parser.add_argument("checkpoint", help="a .ckpt written by `s2f fit` (or a saved model folder, with --decoder)")
    parser.add_argument("output", help="folder to write config.json + model.safetensors into")
    parser.add_argument(
        "--decoder", help="attach a trained face decoder (its .ckpt or saved folder): predictions then include a face"
    )
    options = parser.parse_args(args)
    from .pipeline import Speech2Face, load_decoder

    source = Path(options.checkpoint)
    model = Speech2Face.from_pretrained(source) if source.is_dir() else Speech2Face.from_checkpoint(source)
    if options.decoder:
        model = model.with_decoder(load_decoder(options.decoder, teacher=model.teacher.get("name")))
    folder = model.save_pretrained(options.output)
    print(f"wrote {folder}/config.json and model.safetensors" + (" (with the face decoder)" if model.decoder else ""))
    return 0


def _demo(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="s2f demo",
        description="The whole pipeline on a synthetic audio-visual world: synth, prepare, fit the decoder and "
        "the encoder, evaluate, and write report.html.",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="a small world and short training (about 3 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of training")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    options = parser.parse_args(args)
    from .demo import run_demo

    run_demo(options.out, quick=options.quick, seed=options.seed, progress=not options.no_progress)
    return 0


_PREPARE_EPILOG = """
inputs (give one):
  --avspeech CSV --videos DIR   AVSpeech rows (youtube_id,start,end,face_x,face_y) + downloaded videos
  --voxceleb DIR                VoxCeleb tree id*/VIDEO/CLIP.{mp4,wav,m4a} (wav/m4a need a same-stem .jpg)
  --folder DIR                  every video, and every audio file with a same-stem face image
  --manifest CSV                speaker_id,video (or audio,face)[,clip_id,split,start,end,face_x,face_y,...]
  --pairs CSV                   speaker_id,audio,face pairs whose images are already face crops
                                (no detection; any bad row stops the build; not resumable)

Every listed clip ends up in the shards or in OUT/rejects.jsonl with a reason. Stopped or killed,
the same command resumes; run again on the same input, it does nothing.
"""


def _prepare(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="s2f prepare",
        description="Build training shards from media: detect, align and embed faces, keep 6 s of speech.",
        epilog=_PREPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--avspeech", metavar="CSV", help="AVSpeech CSV (needs --videos)")
    inputs.add_argument("--voxceleb", metavar="DIR", help="VoxCeleb-style tree")
    inputs.add_argument("--folder", metavar="DIR", help="folder of videos or audio + image pairs")
    inputs.add_argument("--manifest", metavar="CSV", help="CSV listing videos or audio + face images")
    inputs.add_argument("--pairs", metavar="CSV", help="CSV of speaker_id,audio,face[,clip_id,split,...] crops")
    parser.add_argument("--videos", metavar="DIR", help="folder of downloaded AVSpeech videos")
    parser.add_argument("--voxceleb-meta", metavar="CSV", help="vox1_meta.csv / vox2_meta.csv (gender, set, ...)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="put every clip in this split")
    parser.add_argument("--out", required=True, help="shard folder to create or resume")
    parser.add_argument("--teacher", default="vggface", help="registered teacher (default: vggface, the paper's)")
    parser.add_argument("--teacher-weights", help="weights file of the teacher (VGG-Face needs one)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per detection/embedding batch")
    parser.add_argument("--workers", type=int, help="decoding processes per device (default: spare cores, <= 8)")
    parser.add_argument("--part-size", type=int, default=256, help="clips per committed part (default: 256)")
    parser.add_argument("--max-seconds", type=float, default=6.0, help="audio kept per clip (the paper: 6 s)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="shorter clips are rejected (default: 3)")
    parser.add_argument("--frames", type=int, default=1, help="frames searched for the face (default: 1)")
    parser.add_argument("--min-face", type=float, default=64.0, help="smallest usable face, pixels (default: 64)")
    parser.add_argument("--silence-dbfs", type=float, default=-60.0, help="quieter clips are rejected")
    parser.add_argument(
        "--landmarks", choices=("auto", "dlib68", "mtcnn5"), default="auto", help="auto: dlib68 when dlib is installed"
    )
    parser.add_argument(
        "--audio-codec", choices=("flac", "pcm16"), default="flac", help="audio storage (default: flac)"
    )
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: cpu, gpu, auto")
    parser.add_argument("--devices", default="auto", help="devices per node: a number, a list like 0,1, or auto")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="Lightning strategy (ddp for several devices)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="delete the output folder's shards first")
    options = parser.parse_args(args)
    if options.avspeech and not options.videos:
        parser.error("--avspeech needs --videos DIR, the folder of downloaded videos")
    if options.videos and not options.avspeech:
        parser.error("--videos goes with --avspeech")
    if options.voxceleb_meta and not options.voxceleb:
        parser.error("--voxceleb-meta goes with --voxceleb")
    from ._registry import TEACHERS

    if options.pairs:
        from .prepare.pairs import build_shards_from_pairs

        kwargs = {"weights": options.teacher_weights} if options.teacher_weights else {}
        manifest = build_shards_from_pairs(
            options.pairs,
            options.out,
            TEACHERS.create(options.teacher, **kwargs),
            batch_size=options.batch_size,
            max_seconds=options.max_seconds,
            overwrite=options.overwrite,
        )
        for split, info in manifest.splits.items():
            print(f"{split:>5}: {info.clips} clips from {info.speakers} speakers")
        print(f"wrote {options.out} (teacher {manifest.teacher}, {manifest.embed_dim}-D)")
        return 0

    from .prepare import prepare, sources
    from .prepare.engine import PrepareInterrupted

    if options.avspeech:
        tasks = sources.read_avspeech(options.avspeech, options.videos, split=options.split)
    elif options.voxceleb:
        tasks = sources.scan_voxceleb(options.voxceleb, options.voxceleb_meta)
    elif options.folder:
        tasks = sources.scan_folder(options.folder)
    else:
        tasks = sources.read_manifest_csv(options.manifest)
    if options.split and not options.avspeech:
        for task in tasks:
            task.split = options.split
    devices = int(options.devices) if options.devices.isdigit() else options.devices
    try:
        summary = prepare(
            tasks,
            options.out,
            options.teacher,
            teacher_weights=options.teacher_weights,
            max_seconds=options.max_seconds,
            min_seconds=options.min_seconds,
            num_frames=options.frames,
            min_face_size=options.min_face,
            silence_dbfs=options.silence_dbfs,
            landmarks=options.landmarks,
            audio_codec=options.audio_codec,
            batch_size=options.batch_size,
            num_workers=options.workers,
            part_size=options.part_size,
            accelerator=options.accelerator,
            devices=devices,
            num_nodes=options.num_nodes,
            strategy=options.strategy,
            progress=not options.no_progress,
            overwrite=options.overwrite,
        )
    except PrepareInterrupted as stop:
        print(f"s2f prepare: {stop}", file=sys.stderr)
        return stop.exit_code
    if summary.manifest.splits or summary.rejected or summary.nothing_to_do:
        print(summary.table())
    return 0


def _models(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="s2f models", description="List registered models (plug-ins included), with their sizes."
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style pattern on names (default: all)")
    parser.add_argument("--kind", choices=("encoder", "teacher", "decoder"), help="only this kind of model")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--tiny", dest="tiny", action="store_const", const=True, help="only tiny variants")
    size.add_argument("--full", dest="tiny", action="store_const", const=False, help="only full-size models")
    options = parser.parse_args(args)
    from ._model_info import format_model_table, model_info

    kinds = (options.kind,) if options.kind else ("encoder", "teacher", "decoder")
    infos = model_info(options.pattern, tiny=options.tiny, kinds=kinds)
    if not infos:
        print(f"no registered model matches {options.pattern!r}; `s2f models` lists them all", file=sys.stderr)
        return 1
    print(format_model_table(infos))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``s2f export CKPT OUT_DIR [--decoder DECODER] [--calibrate-on SHARDS]``: a training checkpoint as a saved
model folder; ``s2f export MODEL_DIR --inference-artefact fp32|int8``: a saved folder's inference artefact."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._options import FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse
from .inference_options import inference_options, inference_settings

__all__ = ["main", "parser"]


def parser() -> CommandParser:
    """The options of ``s2f export``."""
    return _parser(inference_options())


def _parser(inference: FunctionOptions) -> CommandParser:
    """The options; the inference settings say how the encoder runs while ``--calibrate-on`` reads its
    predictions."""
    return build_parser(
        "s2f export",
        "Export a training checkpoint as a saved model.",
        Option("checkpoint", "a .ckpt written by `s2f fit` (or a saved model folder, with --decoder)", positional=True),
        Option(
            "output",
            "folder to write config.json + model.safetensors into; leave it out to add only --inference-artefact to "
            "the saved model folder CHECKPOINT",
            positional=True,
            nargs="?",
        ),
        Option("decoder", "attach a trained face decoder (its .ckpt or saved folder): predictions then include a face"),
        Option(
            "calibrate_on",
            "fit the calibration (s2f.model.calibration) on this shard root's training split: predictions are "
            "moved onto the teacher's mean, and faces are drawn at the spread of real faces",
            metavar="SHARDS",
        ),
        Option(
            "calibration_split",
            "the split to calibrate on; never the split that is reported: test, or the split of --eval's metrics.json",
            default="train",
        ),
        Option("eval", "an `s2f eval` metrics.json: its figures go into the model card", metavar="METRICS"),
        Option("data", "what the model was trained on, for the model card (e.g. 'VoxCeleb2 dev')"),
        Option("recipe", "how it was trained, for the model card (e.g. 'paper conformer')"),
        Option(
            "onnx",
            "also write OUT_DIR/model.onnx: waveforms -> embeddings (front end, encoder, calibration; no face "
            "decoder), batch and length dynamic, for onnxruntime or `s2f predict --model OUT_DIR/model.onnx`",
            type=bool,
            default=False,
        ),
        Option(
            "inference_artefact",
            "also write the model's inference artefact (s2f.model.inference_artefact): its graph for onnxruntime, "
            "which predict, serve and eval then run on this kind of host; int8 is opt-in at inference "
            "(--inference-precision int8)",
            choices=("fp32", "int8"),
            metavar="PRECISION",
        ),
        Option(
            "artefact_calibration_audio",
            "voices (audio files) whose activation ranges the int8 artefact is fitted to; default: 8 synthetic voices",
            nargs="+",
            metavar="AUDIO",
        ),
        Option(
            "artefact_check_audio",
            "voices (audio files), none of the calibration's, on which the artefact must agree with PyTorch's fp32 "
            "embeddings before it is written; default: 8 other synthetic voices",
            nargs="+",
            metavar="AUDIO",
        ),
        Option(
            "artefact_min_cosine",
            "the least cosine to PyTorch's fp32 on every check voice (default: 0.9999 for fp32, 0.999 for int8)",
            type=float,
        ),
        inference,
        config_file=True,
    )


def main(args: list[str]) -> int:
    """Runs ``s2f export ARGS``; returns the exit status."""
    inference = inference_options()
    options = parse(_parser(inference), args)
    from s2f.eval.protocol import REPORTED_SPLIT, refuse_reported_split
    from s2f.model.decoder_folder import load_decoder
    from s2f.model.speech2face import Speech2Face

    evaluation = _evaluation(options.eval)
    # Checked before anything is loaded: calibrating on the evaluated split would report figures it chose.
    reported = (evaluation or {}).get("data", {}).get("split") or REPORTED_SPLIT
    if options.calibrate_on:
        refuse_reported_split(options.calibration_split, reported, "calibrate")

    source = Path(options.checkpoint)
    if options.output is None:
        return _artefact_only(source, options)
    model = Speech2Face.from_pretrained(source) if source.is_dir() else Speech2Face.from_checkpoint(source)
    if options.decoder:
        model = model.with_decoder(load_decoder(options.decoder, teacher=model.teacher.get("name")))
    model.inference = inference_settings(inference, options)
    if options.calibrate_on:
        from s2f.eval.calibrate import calibrate_on_shards

        split = options.calibration_split
        calibration = calibrate_on_shards(model, options.calibrate_on, split, reported_split=reported)
        print(
            f"calibrated on {calibration.fitted_on['clips']} {options.calibration_split} clips: faces drawn "
            f"{calibration.spread:.2f}x farther from the mean than predicted"
        )
    training = {key: value for key, value in (("data", options.data), ("recipe", options.recipe)) if value}
    folder = model.save_pretrained(options.output, evaluation=evaluation, training=training)
    print(
        f"wrote {folder}/config.json, model.safetensors and README.md (the model card)"
        + (" (with the face decoder)" if model.decoder else "")
    )
    if options.onnx:
        from s2f.model.onnx import export_onnx

        onnx_path = export_onnx(model, Path(folder) / "model.onnx")
        print(f"wrote {onnx_path} (waveforms -> embeddings; batch and length dynamic)")
    if options.inference_artefact:
        _write_artefact(Path(folder), options)
    return 0


def _artefact_only(folder: Path, options: argparse.Namespace) -> int:
    """``s2f export MODEL_DIR --inference-artefact P``: the artefact added to a saved folder, nothing else changed."""
    from s2f.errors import ConfigError

    if not options.inference_artefact:
        raise ConfigError("s2f export needs OUT_DIR, or --inference-artefact to add to the saved folder CHECKPOINT")
    changes = [
        f"--{name.replace('_', '-')}" for name in ("decoder", "calibrate_on", "eval", "onnx") if getattr(options, name)
    ]
    if changes:
        raise ConfigError(f"{' '.join(changes)} write a new model folder: give OUT_DIR")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the inference artefact goes into a saved model folder; export the .ckpt first")
    _write_artefact(folder, options)
    return 0


def _write_artefact(folder: Path, options: argparse.Namespace) -> None:
    from s2f.model.onnx import write_inference_artefact

    precision = options.inference_artefact
    calibration = _voices(options.artefact_calibration_audio, range(9000, 9008)) if precision == "int8" else []
    path, agreement = write_inference_artefact(
        folder,
        precision,
        check_audio=_voices(options.artefact_check_audio, range(9100, 9108)),
        calibration_audio=calibration,
        min_cosine=options.artefact_min_cosine,
    )
    print(
        f"wrote {path} and {path.name}.data (cosine to PyTorch fp32 >= {agreement:.5f} on every check voice): "
        "predict, serve and eval run it on this kind of host"
    )


def _voices(paths: list[str] | None, seeds: range) -> list:
    """The audio files given, else synthetic voices of ``seeds`` (seeds no test or benchmark scores)."""
    if paths:
        return list(paths)
    import torch

    from s2f.synth.sample_videos import speech

    return [(torch.from_numpy(speech(6.0, seed=seed)), 16_000) for seed in seeds]


def _evaluation(path: str | None) -> dict | None:
    if path is None:
        return None
    import json

    from s2f.errors import ConfigError

    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read this s2f eval result ({str(exc).splitlines()[0]})") from None
    if not isinstance(result, dict) or "headline" not in result:
        raise ConfigError(f"{path}: not an s2f eval metrics.json (no 'headline'); give the one `s2f eval` wrote")
    return result

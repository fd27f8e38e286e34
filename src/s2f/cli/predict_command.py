"""``s2f predict --model DIR AUDIO ...``: the face behind each voice, from a saved model.

LightningCLI's ``predict`` (a recipe's datamodule through a checkpoint) is ``s2f predict-lightning``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from s2f.errors import S2FError

from ._options import FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse
from .inference_options import inference_options, inference_settings

if TYPE_CHECKING:
    from s2f.model.inference import InferenceSettings
    from s2f.model.speech2face import Prediction

__all__ = ["main", "parser"]

# Options that only LightningCLI's predict takes: with them and no --model, `s2f predict` was LightningCLI's.
_LIGHTNING_OPTIONS = ("--config", "-c", "--ckpt_path", "--print_config")


def parser() -> CommandParser:
    """The options of ``s2f predict``."""
    return _parser(inference_options(old_precision_flag=True))


def _parser(inference: FunctionOptions) -> CommandParser:
    return build_parser(
        "s2f predict",
        "Predict the face behind each voice: the teacher-space embedding of every audio file and, "
        "when the model has a face decoder, the face image. (LightningCLI's predict over a recipe's data is "
        "`s2f predict-lightning`.)",
        Option(
            "model",
            "saved model folder, .ckpt, hf-hub:ORG/NAME, or MODEL.onnx (s2f export)",
            names=("--model", "-m"),
            required=True,
        ),
        Option("audio", "audio files (wav, flac, mp4, ...)", positional=True, nargs="+"),
        Option("output", "write embeddings (.npy/.json) or the face image (.png/.jpg)", names=("--output", "-o")),
        Option("cartoon", "also draw the decoded face as a cartoon (SVG; one per file, numbered)", metavar="OUT.svg"),
        Option("seconds", "clip length", type=float, shown_default="the model's, 6 s in the paper"),
        Option("device", "torch device", default="cpu"),
        inference,
    )


def main(args: list[str]) -> int:
    """Runs ``s2f predict ARGS``; returns the exit status."""
    if _is_lightning_predict(args):
        warnings.warn(
            "`s2f predict` without --model runs LightningCLI's predict for this release only; "
            "call it `s2f predict-lightning` (`s2f predict --model DIR AUDIO` is the face behind audio files)",
            FutureWarning,
            stacklevel=2,
        )
        from .lightning_commands import predict_lightning

        return predict_lightning(args)
    inference = inference_options(old_precision_flag=True)
    options = parse(_parser(inference), args)
    predictions = _predict(options, inference_settings(inference, options))
    for path, prediction in zip(options.audio, predictions, strict=True):
        e = prediction.embedding
        print(f"{path}: {e.numel()}-D embedding, norm {e.norm():.3f}, first {', '.join(f'{v:.3f}' for v in e[:4])} ...")
    if options.output:
        _write(Path(options.output), options.audio, predictions, options.model)
        print(f"wrote {options.output}")
    if options.cartoon:
        for target, prediction in zip(_numbered(Path(options.cartoon), len(predictions)), predictions, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(prediction.cartoon(), encoding="utf-8")
            print(f"wrote {target}")
    return 0


def _predict(options: argparse.Namespace, settings: InferenceSettings) -> list[Prediction]:
    """The predictions, from a saved model or an ``.onnx`` file; says on stderr how the encoder ran."""
    if Path(options.model).suffix == ".onnx":
        from s2f.model.onnx import OnnxSpeech2Face

        onnx_model = OnnxSpeech2Face(options.model)
        print(f"inference: {onnx_model.describe()}", file=sys.stderr)
        return onnx_model.predict(list(options.audio), seconds=options.seconds)
    from s2f.model.speech2face import Speech2Face

    model = Speech2Face.from_pretrained(options.model, device=options.device)
    model.inference = settings
    predictions = model.predict(list(options.audio), seconds=options.seconds)
    print(f"inference: {model.last_inference.describe()}", file=sys.stderr)
    return predictions


def _numbered(out: Path, count: int) -> list[Path]:
    """``out`` for one file; ``out_0``, ``out_1``, ... for several, as the face images are."""
    return [out] if count == 1 else [out.with_stem(f"{out.stem}_{index}") for index in range(count)]


def _is_lightning_predict(args: list[str]) -> bool:
    names = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    return not names & {"--model", "-m"} and bool(names & set(_LIGHTNING_OPTIONS))


def _write(out: Path, audio: list[str], predictions: list[Prediction], model: str) -> None:
    import json

    import numpy as np

    embeddings = np.stack([p.embedding.numpy() for p in predictions])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, embeddings)
    elif out.suffix == ".json":
        out.write_text(json.dumps({p: e.tolist() for p, e in zip(audio, embeddings, strict=True)}))
    elif out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        if predictions[0].image is None:
            raise S2FError(f"{model} has no face decoder, so there is no image; write .npy or .json")
        for index, prediction in enumerate(predictions):
            target = out if len(predictions) == 1 else out.with_stem(f"{out.stem}_{index}")
            if prediction.image is not None:
                prediction.image.save(target)
    else:
        raise S2FError(f"{out}: write .npy, .json, or (with a decoder) .png/.jpg")

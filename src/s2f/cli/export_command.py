"""``s2f export CKPT OUT_DIR [--decoder DECODER] [--calibrate-on SHARDS]``: a training checkpoint as a saved
model folder."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2f export", description="Export a training checkpoint as a saved model.")
    parser.add_argument("checkpoint", help="a .ckpt written by `s2f fit` (or a saved model folder, with --decoder)")
    parser.add_argument("output", help="folder to write config.json + model.safetensors into")
    parser.add_argument(
        "--decoder", help="attach a trained face decoder (its .ckpt or saved folder): predictions then include a face"
    )
    parser.add_argument(
        "--calibrate-on",
        metavar="SHARDS",
        help="fit the calibration (s2f.calibration) on this shard root's training split: predictions are moved onto "
        "the teacher's mean, and faces are drawn at the spread of real faces",
    )
    parser.add_argument("--calibration-split", default="train", help="the split to calibrate on (default: train)")
    return parser


def main(args: list[str]) -> int:
    """Runs ``s2f export ARGS``; returns the exit status."""
    options = _parser().parse_args(args)
    from s2f.pipeline import Speech2Face, load_decoder

    source = Path(options.checkpoint)
    model = Speech2Face.from_pretrained(source) if source.is_dir() else Speech2Face.from_checkpoint(source)
    if options.decoder:
        model = model.with_decoder(load_decoder(options.decoder, teacher=model.teacher.get("name")))
    if options.calibrate_on:
        from s2f.calibration import calibrate_on_shards

        calibration = calibrate_on_shards(model, options.calibrate_on, options.calibration_split)
        print(
            f"calibrated on {calibration.fitted_on['clips']} {options.calibration_split} clips: faces drawn "
            f"{calibration.spread:.2f}x farther from the mean than predicted"
        )
    folder = model.save_pretrained(options.output)
    print(f"wrote {folder}/config.json and model.safetensors" + (" (with the face decoder)" if model.decoder else ""))
    return 0

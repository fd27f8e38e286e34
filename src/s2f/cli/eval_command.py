"""``s2f eval``: the paper's evaluation of a saved model on a shard root, and the protocols of later work.

s2f eval --model models/s2f --data data/shards [--out runs/eval] [--split test] [--seconds 3 6]

The options are :func:`s2f.eval.evaluate`'s keywords, plus the model to load and where.
"""

from __future__ import annotations

import argparse

from ._options import Flag, FunctionOptions
from .config_file import add_config_options, parse_with_config

__all__ = ["main"]


def _options() -> FunctionOptions:
    from s2f.eval.runner import evaluate

    return FunctionOptions(
        evaluate,
        skip=("model", "logger"),
        flags={
            "data_dir": Flag(("--data",), metavar="SHARDS"),
            "out_dir": Flag(("--out",), default="runs/eval", metavar="DIR"),
            "progress": Flag(("--quiet", "--no-progress")),
        },
    )


def _parser(options: FunctionOptions) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2f eval",
        description="Feature similarity, speech -> face retrieval, same-speaker consistency, craniofacial and "
        "demographic agreement on held-out speakers (the paper's protocols), beside SF2F's identity-mean galleries, "
        "Wen et al.'s 1:2 matching, an attribute-only baseline, an independent evaluator network and an identity "
        "score; writes metrics.json and a self-contained report.html.",
    )
    parser.add_argument("--model", "-m", required=True, help="saved model folder or .ckpt")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--wandb", metavar="PROJECT", help="also log to this W&B project (WANDB_MODE=offline works)")
    options.add_to(parser)
    add_config_options(parser)
    return parser


def main(args: list[str]) -> int:
    """Runs ``s2f eval ARGS``; returns the exit status (bad input raises :class:`~s2f.errors.S2FError`)."""
    options = _options()
    parsed = parse_with_config(_parser(options), args)

    from s2f.model.speech2face import Speech2Face

    model = Speech2Face.from_pretrained(parsed.model, device=parsed.device)
    from s2f.model.inference import choose_precision

    # Said with the results, not before them: a bad --data or --split must stay a one-line error.
    precision, reason = choose_precision(parsed.precision, model.device)
    run = None
    if parsed.wandb:
        import wandb

        run = wandb.init(project=parsed.wandb, job_type="eval", config=vars(parsed))
    try:
        result = options.function(model, logger=run, **options.kwargs(parsed))
    finally:
        if run is not None:
            run.finish()
    print(result.summary())
    print(f"inference: {precision} ({reason})")
    print(f"wrote {parsed.out_dir}/metrics.json and {result.report_path}")
    return 0

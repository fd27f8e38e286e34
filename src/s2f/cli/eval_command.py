"""``s2f eval``: the paper's evaluation of a saved model on a shard root, and the protocols of later work.

s2f eval --model models/s2f --data data/shards [--out runs/eval] [--split test] [--seconds 3 6]

The options are :func:`s2f.eval.evaluate`'s keywords, plus the model to load and where.
"""

from __future__ import annotations

from ._options import Flag, FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse
from .inference_options import OLD_PRECISION_FLAG

__all__ = ["main", "parser"]


def _options() -> FunctionOptions:
    from s2f.eval.runner import evaluate

    return FunctionOptions(
        evaluate,
        skip=("model", "logger"),
        flags={
            "data_dir": Flag(("--data",), metavar="SHARDS"),
            "out_dir": Flag(("--out",), default="runs/eval", metavar="DIR"),
            "progress": Flag(("--quiet", "--no-progress")),
            "inference_precision": OLD_PRECISION_FLAG,
        },
    )


def _parser(options: FunctionOptions) -> CommandParser:
    return build_parser(
        "s2f eval",
        "Feature similarity, speech -> face retrieval, same-speaker consistency, craniofacial and "
        "demographic agreement on held-out speakers (the paper's protocols), beside SF2F's identity-mean galleries, "
        "Wen et al.'s 1:2 matching, an attribute-only baseline, an independent evaluator network and an identity "
        "score; writes metrics.json and a self-contained report.html.",
        Option("model", "saved model folder or .ckpt", names=("--model", "-m"), required=True),
        Option("device", "torch device", default="cpu"),
        Option("wandb", "also log to this W&B project (WANDB_MODE=offline works)", metavar="PROJECT"),
        options,
        config_file=True,
    )


def parser() -> CommandParser:
    """The options of ``s2f eval``."""
    return _parser(_options())


def main(args: list[str]) -> int:
    """Runs ``s2f eval ARGS``; returns the exit status (bad input raises :class:`~s2f.errors.S2FError`)."""
    options = _options()
    parsed = parse(_parser(options), args)

    from s2f.model.speech2face import Speech2Face

    model = Speech2Face.from_pretrained(parsed.model, device=parsed.device)
    from s2f.model.inference import choose_precision

    # Said with the results, not before them: a bad --data or --split must stay a one-line error.
    precision, reason = choose_precision(parsed.inference_precision, model.device)
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

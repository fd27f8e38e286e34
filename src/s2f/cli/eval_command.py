"""``s2f eval``: the paper's evaluation of a saved model on a shard root.

s2f eval --model models/s2f --data data/shards [--out runs/eval] [--split test] [--seconds 3 6]
"""

from __future__ import annotations

import argparse

__all__ = ["main"]


def main(args: list[str]) -> int:
    """Runs ``s2f eval ARGS``; returns the exit status (bad input raises :class:`~s2f.errors.S2FError`)."""
    parser = argparse.ArgumentParser(
        prog="s2f eval",
        description="Feature similarity, speech -> face retrieval, same-speaker consistency, craniofacial and "
        "demographic agreement on held-out speakers; writes metrics.json and a self-contained report.html.",
    )
    parser.add_argument("--model", "-m", required=True, help="saved model folder or .ckpt")
    parser.add_argument("--data", required=True, help="shard root (s2f prepare --out)")
    parser.add_argument(
        "--out", default="runs/eval", help="folder for metrics.json and report.html (default: runs/eval)"
    )
    parser.add_argument("--split", default="test", help="held-out split to evaluate (default: test)")
    parser.add_argument("--train-split", default="train", help="split whose mean embedding is the baseline")
    parser.add_argument("--seconds", type=float, nargs="+", default=[3.0, 6.0], help="input lengths (default: 3 6)")
    parser.add_argument("--max-clips", type=int, help="evaluate a seeded random subset of this many clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--craniofacial", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--demographics", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--wandb", metavar="PROJECT", help="also log to this W&B project (WANDB_MODE=offline works)")
    parser.add_argument("--title", default="s2f evaluation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    options = parser.parse_args(args)

    from ..pipeline import Speech2Face
    from .runner import evaluate

    model = Speech2Face.from_pretrained(options.model, device=options.device)
    run = None
    if options.wandb:
        import wandb

        run = wandb.init(project=options.wandb, job_type="eval", config=vars(options))
    try:
        result = evaluate(
            model,
            options.data,
            options.split,
            options.out,
            seconds=tuple(options.seconds),
            max_clips=options.max_clips,
            seed=options.seed,
            craniofacial=options.craniofacial,
            demographics=options.demographics,
            train_split=options.train_split,
            logger=run,
            progress=not options.quiet,
            title=options.title,
        )
    finally:
        if run is not None:
            run.finish()
    print(result.summary())
    print(f"wrote {options.out}/metrics.json and {result.report_path}")
    return 0

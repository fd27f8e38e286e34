"""``s2f fit|validate|test|predict-lightning|run``: LightningCLI on s2f's YAML recipes.

The options are LightningCLI's (``--config`` files with ``class_path`` / ``init_args``, stacked in
order, then ``--section.key value`` overrides); :mod:`s2f.train.lightning_cli` holds the CLI class.
``predict-lightning`` is LightningCLI's ``predict`` (a recipe's datamodule through a checkpoint, written
by the recipe's callbacks); ``s2f predict`` is the face behind audio files (:mod:`.predict_command`).
"""

from __future__ import annotations

from .command_parser import CommandParser, Option, build_parser

__all__ = ["fit", "lightning", "predict_lightning", "run", "run_parser", "test", "validate"]


def lightning(args: list[str]) -> int:
    """LightningCLI on ``args`` as given (its subcommand included)."""
    from s2f.train.lightning_cli import run_lightning_cli

    run_lightning_cli(args)
    return 0


def fit(args: list[str]) -> int:
    """``s2f fit``: train with a recipe."""
    return lightning(["fit", *args])


def validate(args: list[str]) -> int:
    """``s2f validate``: one validation pass of a checkpoint."""
    return lightning(["validate", *args])


def test(args: list[str]) -> int:
    """``s2f test``: one pass of a checkpoint over the test split."""
    return lightning(["test", *args])


def predict_lightning(args: list[str]) -> int:
    """``s2f predict-lightning``: LightningCLI's ``predict`` over a recipe's datamodule."""
    return lightning(["predict", *args])


def run(args: list[str]) -> int:
    """``s2f run RECIPE [RECIPE ...] [--key value ...]``: ``fit`` with the recipes stacked as ``--config`` files."""
    args, recipes = list(args), []
    while args and not args[0].startswith("-"):
        recipes.append(args.pop(0))
    if not recipes:
        parser = run_parser()
        if args and args[0] in ("-h", "--help"):
            parser.print_help()
            return 0
        parser.error("give at least one recipe, e.g. `s2f run recipes/debug.yaml --data.data_dir shards/`")
    return fit([part for recipe in recipes for part in ("--config", recipe)] + args)


def run_parser() -> CommandParser:
    """What ``s2f run --help`` shows (the rest of its command line is LightningCLI's ``fit``)."""
    return build_parser(
        "s2f run",
        "Fit with stacked recipes: the same as `s2f fit --config RECIPE --config RECIPE ... "
        "[--key value ...]`, later recipes overriding earlier ones. `s2f fit --help` lists the keys.",
        Option("recipes", "a YAML recipe (e.g. recipes/paper.yaml)", positional=True, nargs="+", metavar="RECIPE"),
        usage="s2f run RECIPE [RECIPE ...] [--key value ...]",
    )

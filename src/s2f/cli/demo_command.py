"""``s2f demo``: the whole pipeline on a synthetic audio-visual world (options from :func:`s2f.demo.run_demo`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._options import FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse

__all__ = ["demo_arguments", "main", "parser"]


def _options() -> FunctionOptions:
    from s2f.demo import run_demo

    return FunctionOptions(run_demo, skip=("plan",))


def parser() -> CommandParser:
    """The options of ``s2f demo``."""
    return _parser(_options())


def _parser(options: FunctionOptions) -> CommandParser:
    from s2f.demo import DEMO_PLANS

    return build_parser(
        "s2f demo",
        "The whole pipeline on a synthetic audio-visual world: synth, prepare, fit the decoder and "
        "the encoder, evaluate, and write report.html.",
        options,
        # A plan is a name here; the function also takes a DemoPlan, which a command line cannot spell.
        Option("plan", "a named plan (overrides --quick)", choices=list(DEMO_PLANS)),
        config_file=True,
    )


def demo_arguments(args: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments of :func:`s2f.demo.run_demo` that ``s2f demo ARGS`` runs it with (nothing runs)."""
    options = _options()
    namespace = parse(_parser(options), args)
    return {**options.kwargs(namespace), "plan": namespace.plan}


def main(args: list[str]) -> int:
    """Runs ``s2f demo ARGS``; returns the exit status."""
    from s2f.demo import run_demo

    run_demo(**demo_arguments(args))
    return 0

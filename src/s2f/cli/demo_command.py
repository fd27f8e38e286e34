"""``s2f demo``: the whole pipeline on a synthetic audio-visual world (options from :func:`s2f.demo.run_demo`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ._options import FunctionOptions
from .config_file import add_config_options, parse_with_config

__all__ = ["demo_arguments", "main"]


def _options() -> FunctionOptions:
    from s2f.demo import run_demo

    return FunctionOptions(run_demo, skip=("plan",))


def demo_arguments(args: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments of :func:`s2f.demo.run_demo` that ``s2f demo ARGS`` runs it with (nothing runs)."""
    options = _options()
    parser = argparse.ArgumentParser(
        prog="s2f demo",
        description="The whole pipeline on a synthetic audio-visual world: synth, prepare, fit the decoder and "
        "the encoder, evaluate, and write report.html.",
    )
    options.add_to(parser)
    from s2f.demo import DEMO_PLANS

    # A plan is a name here; the function also takes a DemoPlan, which a command line cannot spell.
    parser.add_argument("--plan", choices=list(DEMO_PLANS), help="a named plan (overrides --quick)")
    add_config_options(parser)
    namespace = parse_with_config(parser, args)
    return {**options.kwargs(namespace), "plan": namespace.plan}


def main(args: list[str]) -> int:
    """Runs ``s2f demo ARGS``; returns the exit status."""
    from s2f.demo import run_demo

    run_demo(**demo_arguments(args))
    return 0

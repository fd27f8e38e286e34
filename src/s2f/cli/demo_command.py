"""``s2f demo``: the whole pipeline on a synthetic audio-visual world (options from :func:`s2f.demo.run_demo`)."""

from __future__ import annotations

import argparse

from ._options import FunctionOptions

__all__ = ["main"]


def _options() -> FunctionOptions:
    from s2f.demo import run_demo

    return FunctionOptions(run_demo, skip=("plan",))


def main(args: list[str]) -> int:
    """Runs ``s2f demo ARGS``; returns the exit status."""
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
    namespace = parser.parse_args(args)
    options.function(**options.kwargs(namespace), plan=namespace.plan)
    return 0

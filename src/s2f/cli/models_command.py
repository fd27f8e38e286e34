"""``s2f models [PATTERN] [--kind K] [--tiny|--full]``: what is registered, plug-ins included."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2f models", description="List registered models (plug-ins included), with their sizes."
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style pattern on names (default: all)")
    parser.add_argument("--kind", choices=("encoder", "teacher", "decoder"), help="only this kind of model")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--tiny", dest="tiny", action="store_const", const=True, help="only tiny variants")
    size.add_argument("--full", dest="tiny", action="store_const", const=False, help="only full-size models")
    return parser


def main(args: list[str]) -> int:
    """Runs ``s2f models ARGS``; returns the exit status (1 when nothing matches)."""
    options = _parser().parse_args(args)
    from s2f.model.info import format_model_table, model_info

    kinds = (options.kind,) if options.kind else ("encoder", "teacher", "decoder")
    infos = model_info(options.pattern, tiny=options.tiny, kinds=kinds)
    if not infos:
        print(f"no registered model matches {options.pattern!r}; `s2f models` lists them all", file=sys.stderr)
        return 1
    print(format_model_table(infos))
    return 0

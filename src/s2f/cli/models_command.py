"""``s2f models [PATTERN] [--kind K] [--tiny|--full]``: what is registered, plug-ins included."""

from __future__ import annotations

import sys

from .command_parser import CommandParser, Option, build_parser, parse

__all__ = ["main", "parser"]


def parser() -> CommandParser:
    """The options of ``s2f models``."""
    return build_parser(
        "s2f models",
        "List registered models (plug-ins included), with their sizes.",
        Option("pattern", "shell-style pattern on names", positional=True, nargs="?", default="*", shown_default="all"),
        Option("kind", "only this kind of model", choices=("encoder", "teacher", "decoder")),
        Option("tiny", "only tiny variants", names=("--tiny",), const=True, exclusive="size"),
        Option("tiny", "only full-size models", names=("--full",), const=False, exclusive="size"),
    )


def main(args: list[str]) -> int:
    """Runs ``s2f models ARGS``; returns the exit status (1 when nothing matches)."""
    options = parse(parser(), args)
    from s2f.model.info import format_model_table, model_info

    kinds = (options.kind,) if options.kind else ("encoder", "teacher", "decoder")
    infos = model_info(options.pattern, tiny=options.tiny, kinds=kinds)
    if not infos:
        print(f"no registered model matches {options.pattern!r}; `s2f models` lists them all", file=sys.stderr)
        return 1
    print(format_model_table(infos))
    return 0

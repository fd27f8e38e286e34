"""``s2f recipes``: the bundled training recipes, listed or copied out; and their names on the command line.

:func:`with_recipe_paths` is what lets ``s2f run paper debug`` and ``s2f fit --config paper`` name a
bundled recipe: the dispatcher hands the LightningCLI commands their arguments with every recipe name
replaced by its file, so LightningCLI (and every process a multi-device run starts) sees plain paths.
"""

from __future__ import annotations

from s2f.train.bundled_recipes import (
    copy_recipes,
    recipe_dir,
    recipe_names,
    recipe_path,
    recipe_summary,
    resolve_recipe,
)

from .command_parser import CommandParser, Option, build_parser, parse

__all__ = ["main", "parser", "with_recipe_paths"]

_CONFIG_FLAGS = ("--config", "-c")


def with_recipe_paths(args: list[str], *, leading_recipes: bool = False) -> list[str]:
    """``args`` with each ``--config``/``-c`` value (and, for ``s2f run``, each leading recipe) resolved.

    A path to a file stays as it is; a bundled recipe's name becomes its file
    (:func:`s2f.train.bundled_recipes.resolve_recipe`, which also says what is wrong with a name that is neither).
    """
    resolved: list[str] = []
    index = 0
    while leading_recipes and index < len(args) and not args[index].startswith("-"):
        resolved.append(resolve_recipe(args[index]))
        index += 1
    while index < len(args):
        arg = args[index]
        if arg in _CONFIG_FLAGS and index + 1 < len(args):
            resolved += [arg, resolve_recipe(args[index + 1])]
            index += 2
            continue
        if arg.startswith("--config="):
            arg = "--config=" + resolve_recipe(arg.removeprefix("--config="))
        resolved.append(arg)
        index += 1
    return resolved


def parser() -> CommandParser:
    """The options of ``s2f recipes``."""
    return build_parser(
        "s2f recipes",
        "The training recipes that ship with s2f. Run them by name (`s2f run paper debug "
        "--data.data_dir shards/`, `s2f fit --config paper`), or copy them out to edit and pass the copies' paths.",
        Option("copy", "copy every recipe into DIR (created)", metavar="DIR"),
        Option("force", "with --copy: overwrite files that exist", type=bool, default=False),
    )


def main(args: list[str]) -> int:
    """Runs ``s2f recipes [--copy DIR [--force]]``; returns the exit status."""
    options = parser()
    parsed = parse(options, args)
    if parsed.force and not parsed.copy:
        options.error("--force goes with --copy DIR")
    if parsed.copy:
        written, kept = copy_recipes(parsed.copy, overwrite=parsed.force)
        print(f"copied {len(written)} recipes to {parsed.copy}")
        if kept:
            print(f"kept {len(kept)} that were there ({', '.join(p.name for p in kept)}); --force overwrites them")
        return 0
    names = recipe_names()
    width = max(map(len, names)) + 2
    print(f"bundled recipes ({recipe_dir()}):")
    for name in names:
        print(f"  {name:<{width}}{recipe_summary(recipe_path(name))}")
    print()
    print("run by name, later recipes overriding earlier ones:  s2f run paper debug --data.data_dir shards/")
    print("copy them out to edit:                              s2f recipes --copy recipes/")
    return 0

"""The ``s2f`` command: one module per subcommand, dispatched from :data:`COMMANDS`.

Every subcommand is a function ``(args: list[str]) -> int`` in a module of this package, imported
only when it runs (``s2f --help`` imports neither torch nor Lightning). Every command's parser is built
by one builder (:mod:`s2f.cli.command_parser`) from declared options: a small spec for the few of
``check``, ``models``, ``recipes``, ``run``, ``export``, ``predict`` and ``serve``, and the signatures of
the functions that ``prepare``, ``eval``, ``synth`` and ``demo`` run (:mod:`s2f.cli._options`); the
inference settings are one group of options wherever the encoder runs (:mod:`s2f.cli.inference_options`).
Every command first sets glibc's allocator to reuse large blocks (:mod:`s2f.cli.heap`).
``fit``, ``validate``, ``test`` and ``predict-lightning`` are LightningCLI's.
``prepare``, ``eval``, ``synth``, ``demo``, ``serve`` and ``export`` also read their options from
``--config FILE.yaml`` and print them with ``--print_config`` (:mod:`s2f.cli.config_file`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s2f._noise import drop_third_party_noise
from s2f.errors import S2FError
from s2f.extras import extra_for_module, missing_extra_error, require_extra

from .heap import reuse_freed_memory

__all__ = ["COMMANDS", "Command", "main"]


@dataclass(frozen=True)
class Command:
    """One subcommand: where its function lives and what ``s2f --help`` says about it.

    Attributes:
        name: What follows ``s2f`` on the command line.
        module: The module of this package that holds the function.
        function: The function's name: it takes the arguments after the name and returns the exit status.
        help: One line for ``s2f --help``.
        extra: The optional extra the command cannot run without (:mod:`s2f.extras`), checked before it
            starts; a command whose needs depend on its input checks for itself.
    """

    name: str
    module: str
    function: str
    help: str
    extra: str | None = None

    def load(self) -> Callable[[list[str]], int]:
        """The command's function (importing its module)."""
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.function)


COMMANDS: tuple[Command, ...] = (
    Command("demo", "demo_command", "main", "the whole pipeline on a synthetic world, in minutes: report.html", "demo"),
    Command("synth", "synth_command", "main", "a synthetic audio-visual world (mp4 + manifest) to prepare", "demo"),
    Command("prepare", "prepare_command", "main", "media -> training shards (resumable; every rejected clip listed)"),
    Command("fit", "lightning_commands", "fit", "train with LightningCLI: s2f fit --config RECIPE [--key value ...]"),
    Command("validate", "lightning_commands", "validate", "LightningCLI validate: --config RECIPE --ckpt_path CKPT"),
    Command("test", "lightning_commands", "test", "LightningCLI test: --config RECIPE --ckpt_path CKPT"),
    Command(
        "predict-lightning",
        "lightning_commands",
        "predict_lightning",
        "LightningCLI predict over a recipe's data: --config RECIPE --ckpt_path CKPT",
    ),
    Command("run", "lightning_commands", "run", "fit with stacked recipes: s2f run RECIPE [RECIPE ...] [--key value]"),
    Command("recipes", "recipes_command", "main", "the bundled recipes (paper, debug, ...); --copy DIR to edit them"),
    Command("export", "export_command", "main", "a training checkpoint -> a model folder (config.json + safetensors)"),
    Command("predict", "predict_command", "main", "the face (embedding, image) behind audio files: --model DIR AUDIO"),
    Command(
        "eval",
        "eval_command",
        "main",
        "the paper's evaluation of a model on shards: metrics.json + report.html",
        "eval",
    ),
    Command(
        "serve",
        "serve_command",
        "main",
        "a local web page: speak, see the face, its cartoon and the nearest faces",
        "serve",
    ),
    Command("models", "models_command", "main", "what is registered: kind, parameters, embedding size, package"),
    Command("check", "check_command", "main", "verify a shard root: counts, every chunk's size and checksum"),
)
"""Every subcommand, in the order ``s2f --help`` lists them."""

_BY_NAME = {command.name: command for command in COMMANDS}
_LIGHTNING = Command("", "lightning_commands", "lightning", "LightningCLI on the arguments as given")


def usage() -> str:
    """What ``s2f --help`` prints: the commands and how to get each one's options."""
    width = max(len(command.name) for command in COMMANDS) + 2
    lines = [
        "usage: s2f COMMAND [ARGS ...]",
        "",
        "Learn the face behind a voice (Speech2Face, Oh et al., CVPR 2019).",
        "",
        "commands:",
        *(f"  {command.name:<{width}}{command.help}" for command in COMMANDS),
        "",
        "`s2f COMMAND --help` lists a command's options; `s2f --version` prints s2f's version. Training recipes",
        "are YAML files read by LightningCLI (class_path / init_args); the bundled ones run by name",
        "(`s2f recipes` lists them), and a path to your own works wherever a name does:",
        "  s2f run paper debug --data.data_dir shards/",
        "  s2f fit --config paper --config my_recipe.yaml --data.data_dir shards/",
        "prepare, eval, synth, demo, serve and export read options from YAML too (flags win over the file):",
        "  s2f eval --model m --data shards/ --print_config > eval.yaml; s2f eval --config eval.yaml --seed 1",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s2f`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        from s2f._version import __version__

        print(f"s2f {__version__}")
        return 0
    if args[0].startswith("-"):  # LightningCLI's own options, given before its subcommand: `s2f -c RECIPE fit`
        command, args = _LIGHTNING, ["", *args]
    elif args[0] in _BY_NAME:
        command = _BY_NAME[args[0]]
    else:
        print(f"s2f: error: no command {args[0]!r}; `s2f --help` lists them", file=sys.stderr)
        return 2
    drop_third_party_noise()
    reuse_freed_memory()
    try:
        return command.load()(_arguments(command, args[1:]))
    except S2FError as exc:
        print(f"s2f: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = extra_for_module(exc.name or "")
        if extra is None:
            raise
        needed_by = f"s2f {command.name}".strip()
        print(f"s2f: error: {missing_extra_error(extra, needed_by, [exc.name or ''])}", file=sys.stderr)
        return 2


def _arguments(command: Command, args: list[str]) -> list[str]:
    """The command's arguments once its extra is checked and, for LightningCLI, recipe names are paths."""
    asks_for_help = any(arg in ("-h", "--help") for arg in args)
    if command.extra and not asks_for_help:
        require_extra(command.extra, f"s2f {command.name}")
    if command.module == "lightning_commands":
        from .recipes_command import with_recipe_paths

        return with_recipe_paths(args, leading_recipes=command.name == "run")
    return args


if __name__ == "__main__":
    raise SystemExit(main())

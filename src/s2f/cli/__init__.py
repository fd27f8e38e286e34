"""The ``s2f`` command: one module per subcommand, dispatched from :data:`COMMANDS`.

Every subcommand is a function ``(args: list[str]) -> int`` in a module of this package, imported
only when it runs (``s2f --help`` imports neither torch nor Lightning). The options of ``prepare``,
``eval``, ``synth`` and ``demo`` are generated from the signatures of the functions they run
(:mod:`s2f.cli._options`); ``fit``, ``validate``, ``test`` and ``predict-lightning`` are LightningCLI's.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from s2f.errors import S2FError

__all__ = ["COMMANDS", "Command", "main"]


@dataclass(frozen=True)
class Command:
    """One subcommand: where its function lives and what ``s2f --help`` says about it.

    Attributes:
        name: What follows ``s2f`` on the command line.
        module: The module of this package that holds the function.
        function: The function's name: it takes the arguments after the name and returns the exit status.
        help: One line for ``s2f --help``.
    """

    name: str
    module: str
    function: str
    help: str

    def load(self) -> Callable[[list[str]], int]:
        """The command's function (importing its module)."""
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.function)


COMMANDS: tuple[Command, ...] = (
    Command("demo", "demo_command", "main", "the whole pipeline on a synthetic world, in minutes: report.html"),
    Command("synth", "synth_command", "main", "a synthetic audio-visual world (mp4 + manifest) to prepare"),
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
    Command("export", "export_command", "main", "a training checkpoint -> a model folder (config.json + safetensors)"),
    Command("predict", "predict_command", "main", "the face (embedding, image) behind audio files: --model DIR AUDIO"),
    Command("eval", "eval_command", "main", "the paper's evaluation of a model on shards: metrics.json + report.html"),
    Command("models", "models_command", "main", "what is registered: kind, parameters, embedding size, package"),
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
        "`s2f COMMAND --help` lists a command's options. Training recipes are YAML files read by LightningCLI",
        "(class_path / init_args; stack several with --config), e.g.",
        "  s2f fit --config recipes/paper.yaml --config recipes/debug.yaml --data.data_dir shards/",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s2f`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0].startswith("-"):  # LightningCLI's own options, given before its subcommand: `s2f -c RECIPE fit`
        command, args = _LIGHTNING, ["", *args]
    elif args[0] in _BY_NAME:
        command = _BY_NAME[args[0]]
    else:
        print(f"s2f: error: no command {args[0]!r}; `s2f --help` lists them", file=sys.stderr)
        return 2
    try:
        return command.load()(args[1:])
    except S2FError as exc:
        print(f"s2f: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

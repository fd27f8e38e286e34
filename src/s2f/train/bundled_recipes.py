"""The training recipes that ship inside the package, found by name.

A wheel carries them as ``s2f/recipes/*.yaml``; a source checkout keeps them in the repository's
``recipes/`` folder, which the build maps into the package (``setup.py``), so both are one copy.
``s2f run paper debug`` and ``s2f fit --config paper`` name them; a path to a YAML file always works
and wins over a bundled recipe of the same name.

Example:
    >>> from s2f.train.bundled_recipes import recipe_names, recipe_path
    >>> "paper" in recipe_names() and recipe_path("paper").name == "paper.yaml"
    True
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..errors import ConfigError

__all__ = ["copy_recipes", "recipe_dir", "recipe_names", "recipe_path", "recipe_summary", "resolve_recipe"]

_SUFFIXES = (".yaml", ".yml")
# A bare word such as `paper` or `debug.yaml`: meant as a recipe name when no such file exists.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def recipe_dir() -> Path:
    """The folder holding the bundled recipes: inside the installed package, else the checkout's ``recipes/``."""
    package = Path(__file__).resolve().parents[1]  # s2f/, beside this module's train/
    installed = package / "recipes"
    if installed.is_dir():
        return installed
    # An editable install of a src/ layout imports the package from the checkout, beside recipes/.
    checkout = package.parents[1] / "recipes"
    if checkout.is_dir():
        return checkout
    raise ConfigError(f"the bundled recipes are missing from {installed}: reinstall s2f")


def recipe_names() -> list[str]:
    """Names of the bundled recipes (``paper``, ``debug``, ...), sorted."""
    return sorted(path.stem for path in recipe_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The file of the bundled recipe ``name`` (with or without ``.yaml``).

    Raises:
        ConfigError: No bundled recipe has that name; the message lists the ones there are.
    """
    stem = _strip_suffix(name)
    path = recipe_dir() / f"{stem}.yaml"
    if not path.is_file():
        raise ConfigError(f"no bundled recipe {name!r}; there are: {', '.join(recipe_names())} (`s2f recipes`)")
    return path


def resolve_recipe(value: str) -> str:
    """What a ``--config`` value or a ``s2f run`` recipe means: an existing file, else a bundled recipe.

    A value that is neither a file nor a word (an inline YAML or JSON config, which LightningCLI also
    takes) comes back unchanged.

    Raises:
        ConfigError: A word or a ``.yaml`` path that is neither a file nor a bundled recipe; the message
            says which bundled recipes there are.
    """
    if Path(value).exists():
        return value
    if _NAME.fullmatch(value):
        if _strip_suffix(value) in recipe_names():
            return str(recipe_path(value))
        bundled = ", ".join(recipe_names())
        raise ConfigError(f"{value!r} is neither a file nor a bundled recipe ({bundled}; `s2f recipes` describes them)")
    if value.endswith(_SUFFIXES) and "\n" not in value:
        stem = _strip_suffix(Path(value).name)
        hint = f"`{stem}` is a bundled recipe" if stem in recipe_names() else f"bundled: {', '.join(recipe_names())}"
        raise ConfigError(f"{value}: no such recipe file ({hint}; `s2f recipes --copy DIR` copies them out)")
    return value


def recipe_summary(path: Path) -> str:
    """The recipe's opening comment up to its first colon, semicolon or full stop: what it is, in a few words."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#") or text == "#":
            break
        lines.append(text.lstrip("#").strip())
    return re.split(r"[:;.](?:\s|$)", " ".join(lines), maxsplit=1)[0]


def copy_recipes(folder: str | Path, *, overwrite: bool = False) -> tuple[list[Path], list[Path]]:
    """Copies every bundled recipe into ``folder`` (created) for editing.

    Returns:
        The files written, and the files left alone because they existed (unless ``overwrite``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for name in recipe_names():
        target = folder / f"{name}.yaml"
        if target.exists() and not overwrite:
            kept.append(target)
            continue
        shutil.copyfile(recipe_path(name), target)
        written.append(target)
    return written, kept


def _strip_suffix(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name

"""Fresh virtual environments that install a built s2f wheel offline, reusing this environment's packages.

Reinstalling PyTorch and the rest for every test would cost gigabytes and minutes, so a fresh
environment sees the already-installed distributions it is allowed to have through a *view*: a
folder of symbolic links to exactly those distributions' files (code and ``.dist-info``), put on its
path by a ``.pth`` file. Which distributions it gets is worked out from the wheel's own metadata
(its requirements and the extras asked for, followed transitively through the installed packages'
metadata), so a base install really lacks every extra's packages. pip then installs the wheel with
``--no-index``: it succeeds only if the view satisfies every requirement the wheel declares.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["FreshEnv", "clean_env", "distribution_closure", "wheel_requirements"]

# The tools the fresh environment needs besides what the wheel pulls in (pip, to install the wheel).
TOOLS = ("pip",)


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    return [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def distribution_closure(own: list[Requirement], own_name: str, extras: Iterable[str]) -> set[str]:
    """Canonical names of the installed distributions that ``own`` (with ``extras``) needs, transitively.

    Requirements on ``own_name`` itself (``s2f[faces]`` inside the ``eval`` extra) add their extras.

    Raises:
        importlib.metadata.PackageNotFoundError: A needed distribution is not installed here.
    """
    wanted = set(extras)
    grew = True
    while grew:
        before = len(wanted)
        for requirement in own:
            if canonicalize_name(requirement.name) == own_name and _applies(requirement, wanted):
                wanted |= requirement.extras
        grew = len(wanted) > before
    pending = [
        (requirement.name, set(requirement.extras))
        for requirement in own
        if canonicalize_name(requirement.name) != own_name and _applies(requirement, wanted)
    ]
    seen: dict[str, set[str]] = {}
    while pending:
        name, asked = pending.pop()
        key = canonicalize_name(name)
        if key in seen and asked <= seen[key]:
            continue
        seen.setdefault(key, set()).update(asked)
        for text in importlib.metadata.distribution(key).requires or []:
            requirement = Requirement(text)
            if _applies(requirement, seen[key]):
                pending.append((requirement.name, set(requirement.extras)))
    return set(seen)


def _link_distributions(names: Iterable[str], view: Path) -> None:
    """Links every top-level file and folder of the named installed distributions into ``view``."""
    view.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        distribution = importlib.metadata.distribution(name)
        site = Path(str(distribution.locate_file("")))
        tops = {PurePosixPath(str(entry)).parts[0] for entry in distribution.files or ()}
        for top in sorted(tops - {"..", "__pycache__"}):
            source, target = site / top, view / top
            if not top.endswith(".pth") and source.exists() and not target.exists():
                target.symlink_to(source, target_is_directory=source.is_dir())


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """This process's environment without its virtual environment and paths, with ``venv``'s ``bin`` first."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env.update(VIRTUAL_ENV=str(venv), PYTHONNOUSERSITE="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline", **extra)
    return env


class FreshEnv:
    """A new virtual environment at ``root / "venv"`` that sees only the distributions given.

    Args:
        root: A folder for the environment and its view.
        distributions: Canonical names of the installed distributions it may import (pip is added).
    """

    def __init__(self, root: Path, distributions: Iterable[str]) -> None:
        self.root = root
        self.venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], check=True)
        self.python = self.venv / "bin" / "python"
        purelib = self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
        _link_distributions({*distributions, *TOOLS}, root / "view")
        Path(purelib, "reused-distributions.pth").write_text(f"{root / 'view'}\n")

    def run_python(self, code: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python -c CODE`` in this environment."""
        return self.run([str(self.python), "-c", code], cwd=cwd, check=check)

    def run(
        self, command: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``command`` in this environment (its ``bin`` first on PATH), capturing text output."""
        result = subprocess.run(
            command, cwd=cwd, env=dict(env or clean_env(self.venv)), capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def install(self, requirement: str) -> None:
        """``pip install --no-index REQUIREMENT``: every dependency must already be in the view."""
        self.run(
            [str(self.python), "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
             "--quiet", requirement],
        )  # fmt: skip

"""The optional extras: each one complete for what it promises, and a missing one named in one line.

Completeness is read from the source: every third-party package that s2f imports anywhere must come
with the base install or with the extra that :mod:`s2f.extras` names for it, as pyproject.toml declares.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import s2f.extras
from helpers.installs import distribution_closure
from s2f.cli import main, models_command
from s2f.errors import MissingExtraError, S2FError
from s2f.extras import EXTRA_INCLUDES, EXTRA_MODULES, extra_for_module, require_extra

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL = PROJECT["optional-dependencies"]
# Imported only for a feature that names its own install line (`from_pretrained("hf-hub:...")`).
OWN_INSTALL_LINE = {"huggingface_hub"}


def _imported_packages() -> set[str]:
    """Top-level names of every package outside the standard library that s2f's source imports."""
    found = set()
    for path in (ROOT / "src" / "s2f").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in ("s2f", "__future__")}


def _providers() -> dict[str, set[str]]:
    """Top-level module name -> the installed distributions whose files hold it (read from RECORD: some
    wheels' top_level.txt lists only their compiled helper, as dlib-bin's does)."""
    providers: dict[str, set[str]] = {}
    for module, names in importlib.metadata.packages_distributions().items():
        providers.setdefault(module, set()).update(canonicalize_name(name) for name in names)
    for distribution in importlib.metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        # RECORD read as text: Distribution.files builds a path object per file, seconds for torch alone.
        for line in (distribution.read_text("RECORD") or "").splitlines():
            path = line.partition(",")[0]
            top = path.partition("/")[0] if "/" in path else path.partition(".")[0]
            providers.setdefault(top, set()).add(name)
    return providers


def _requirements(extra: str | None) -> list[Requirement]:
    """The base requirements, or an extra's own with the extras it includes expanded."""
    texts = PROJECT["dependencies"] if extra is None else OPTIONAL[extra]
    requirements = []
    for requirement in map(Requirement, texts):
        if canonicalize_name(requirement.name) == "s2f":
            requirements += [r for included in sorted(requirement.extras) for r in _requirements(included)]
        else:
            requirements.append(requirement)
    return requirements


def _closure(extra: str | None) -> set[str]:
    return distribution_closure(_requirements(extra), "s2f", ())


def test_every_package_s2f_imports_comes_with_the_base_install_or_with_the_extra_named_for_it() -> None:
    providers = _providers()
    base = _closure(None)
    closures = {extra: _closure(extra) for extra in EXTRA_MODULES}
    outside_base = {}
    for package in sorted(_imported_packages()):
        distributions = providers.get(package, set())
        assert distributions, f"{package}: imported by s2f but installed by no distribution here"
        if distributions & base:
            assert extra_for_module(package) is None, f"{package} comes with the base install"
            continue
        outside_base[package] = extra_for_module(package)
        if package in OWN_INSTALL_LINE:
            continue
        extra = outside_base[package]
        assert extra is not None, f"{package}: not in the base install, and s2f.extras names no extra for it"
        assert distributions & closures[extra], f"{package}: the {extra} extra does not install it"
    assert {m for modules in EXTRA_MODULES.values() for m in modules} == set(outside_base) - OWN_INSTALL_LINE


def test_the_extras_in_s2f_extras_are_the_ones_pyproject_declares() -> None:
    assert set(OPTIONAL) == {*EXTRA_MODULES, "dev"}
    for extra in EXTRA_MODULES:
        included = {e for text in OPTIONAL[extra] if (r := Requirement(text)).name == "s2f" for e in r.extras}
        assert included == set(EXTRA_INCLUDES.get(extra, ())), extra
    # dev is everything: every other extra, through its own requirements.
    dev = _closure("dev")
    assert all(_closure(extra) <= dev for extra in EXTRA_MODULES)
    assert {"build", "setuptools", "pytest"} <= dev


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Makes the named modules look uninstalled to s2f.extras (and works in an empty folder)."""
    monkeypatch.chdir(tmp_path)

    def hide(*modules: str) -> None:
        real = s2f.extras._is_installed
        monkeypatch.setattr(s2f.extras, "_is_installed", lambda name: name not in modules and real(name))

    return hide


def test_a_missing_extra_is_one_line_naming_it(without) -> None:
    without("dlib")
    with pytest.raises(MissingExtraError) as raised:
        require_extra("demo", "s2f demo")
    assert str(raised.value) == "s2f demo needs s2f's demo extra (dlib is not installed): pip install 's2f[demo]'"
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, S2FError)
    require_extra("faces", "s2f prepare", modules=("facenet_pytorch",))  # only what is asked for
    require_extra("train", "training")


def test_a_command_without_its_extra_stops_before_it_starts(without, capsys: pytest.CaptureFixture[str]) -> None:
    without("skimage", "facenet_pytorch")
    assert main(["demo", "--quick", "--out", "never"]) == 2
    assert main(["synth", "--out", "never"]) == 2
    assert main(["prepare", "--folder", "never", "--out", "never"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "s2f: error: s2f demo needs s2f's demo extra (skimage, facenet_pytorch are not installed): "
        "pip install 's2f[demo]'",
        "s2f: error: s2f synth needs s2f's demo extra (skimage, facenet_pytorch are not installed): "
        "pip install 's2f[demo]'",
        "s2f: error: s2f prepare needs s2f's faces extra (facenet_pytorch is not installed): pip install 's2f[faces]'",
    ]
    assert not Path("never").exists()
    with pytest.raises(SystemExit) as exited:  # help needs no extra
        main(["demo", "--help"])
    assert exited.value.code == 0


def test_a_module_of_an_extra_missing_deep_inside_a_command_is_named_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def needs(module: str):
        def run(args: list[str]) -> int:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)

        return run

    monkeypatch.setattr(models_command, "main", needs("wandb"))
    assert main(["models"]) == 2
    assert capsys.readouterr().err == (
        "s2f: error: s2f models needs s2f's train extra (wandb is not installed): pip install 's2f[train]'\n"
    )
    monkeypatch.setattr(models_command, "main", needs("not_an_extra"))
    with pytest.raises(ModuleNotFoundError):  # anything else is a bug, with its traceback
        main(["models"])

"""Project sessions: `nox -s tests lint typecheck doctest` (what CI runs), plus `quick`, `bench` and `gpu`.

Sessions run in the environment nox itself runs in (``venv_backend="none"``): the stack is a
multi-gigabyte PyTorch install, and building it once per session would dwarf the checks.
Install the project first with ``pip install -e '.[dev]'``.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "doctest"]
nox.options.reuse_venv = "yes"

OFFLINE = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (GPU tests skip themselves without a CUDA device)."""
    session.run("pytest", *(session.posargs or ["tests"]), env=OFFLINE)


@nox.session(venv_backend="none")
def quick(session: nox.Session) -> None:
    """The tests not marked `slow`: under 3 minutes on 2 cores, for the edit-and-test loop (CI runs `tests`)."""
    session.run("pytest", "-m", "not slow", *(session.posargs or ["tests"]), env=OFFLINE)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy on the package."""
    session.run("mypy", "src/s2f")


@nox.session(venv_backend="none")
def doctest(session: nox.Session) -> None:
    """The examples in the docstrings, run as tests."""
    session.run("pytest", "--doctest-modules", "src/s2f", "-p", "no:cacheprovider", env=OFFLINE)


BENCHMARKS = (
    "encoder_throughput.py",
    "compare_encoders.py",
    "prepare_throughput.py",
    "train_step.py",
    "peer_ve_conv.py",
    "synth_throughput.py",
    "geometry.py",
    "retrieval_scale.py",
    "serve_load.py",
    "predict_latency.py",
)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Every benchmark in its quick mode (prints ratios; never fails on timing).

    `nox -s bench -- encoder_throughput.py --models s2f_cnn` runs one benchmark with its own options.
    """
    if session.posargs:
        script, *args = session.posargs
        session.run("python", os.path.join("benchmarks", script), *args, env=OFFLINE)
        return
    for script in BENCHMARKS:
        session.run("python", os.path.join("benchmarks", script), "--quick", env=OFFLINE)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """Only the tests marked `gpu` (run on a machine with CUDA)."""
    session.run("pytest", "-m", "gpu", "tests", env=OFFLINE)

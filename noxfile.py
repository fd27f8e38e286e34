"""Project sessions: `nox -s tests hosts lint typecheck doctest` (what CI runs), plus `quick`, `bench` and `gpu`.

Sessions run in the environment nox itself runs in (``venv_backend="none"``): the stack is a
multi-gigabyte PyTorch install, and building it once per session would dwarf the checks.
Install the project first with ``pip install -e '.[dev]'``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "hosts", "lint", "typecheck", "doctest", "figures"]
nox.options.reuse_venv = "yes"

OFFLINE = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (GPU tests skip themselves without a CUDA device)."""
    session.run("pytest", *(session.posargs or ["tests"]), env=OFFLINE)


# Other kinds of CPU, played on this one: PyTorch's own kernels (ATEN_CPU_CAPABILITY), oneDNN's
# (ONEDNN_MAX_CPU_ISA) and MKL's (MKL_ENABLE_INSTRUCTIONS) held to an instruction set, and native bf16
# treated as absent (S2F_NATIVE_BF16). AVX2 is what an AVX2-only laptop or AMD host runs; the generic
# kernels round differently again, so an AVX2 host that runs them still tests a second kind.
HOST_KINDS = {
    "avx2, no native bf16": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "S2F_NATIVE_BF16": "0",
    },
    "generic kernels, SSE4.1": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "S2F_NATIVE_BF16": "0",
    },
}


@nox.session(venv_backend="none")
def hosts(session: nox.Session) -> None:
    """The tests marked `host_sensitive`, once per CPU kind in HOST_KINDS (CONTRIBUTING.md: host-dependent tests)."""
    for kind, restriction in HOST_KINDS.items():
        session.log(f"host-sensitive tests as on: {kind}")
        # Each kind compiles into an Inductor cache of its own: the cache's keys do not hold the instruction set
        # ATen is held to, and on an AVX-512 host the compiled encoder then gave NaN as on AVX2 (a fresh cache: the
        # eager result).
        cache = tempfile.mkdtemp(prefix="s2f-inductor-")
        env = {**OFFLINE, **restriction, "TORCHINDUCTOR_CACHE_DIR": cache}
        session.run("pytest", "-m", "host_sensitive", *(session.posargs or ["tests"]), env=env)


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
def figures(session: nox.Session) -> None:
    """Every measured figure in README.md, docs/ and benchmarks/README.md names the command that prints it."""
    session.run("python", "benchmarks/figure_audit.py", "--quiet")


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy on the package."""
    session.run("mypy", "src/s2f")


@nox.session(venv_backend="none")
def doctest(session: nox.Session) -> None:
    """The examples in the docstrings, run as tests."""
    # Old paths' stub files (s2f._compat.moved) are their new modules under another name: pytest would
    # collect each module twice and refuse the second file.
    stubs = [path for path in Path("src/s2f").rglob("*.py") if STUB_MARK in path.read_text(encoding="utf-8")]
    ignores = [f"--ignore={path}" for path in stubs]
    session.run("pytest", "--doctest-modules", "src/s2f", *ignores, "-p", "no:cacheprovider", env=OFFLINE)


STUB_MARK = "from s2f._compat.moved import redirect"


BENCHMARKS = (
    "encoder_throughput.py",
    "demo_encoder_step.py",
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

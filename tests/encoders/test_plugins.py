"""Third-party encoders through the ``s2f.encoders`` entry points, for real: pip-installed, then trained by the CLI.

Two distributions are written into a temporary folder and pip-installed (offline, into a
``--target`` folder, so the test environment is left as it was): a working plug-in with an
encoder registered by its module and another registered as a builder entry point, and a
broken one whose module raises on import. The CLI then runs in fresh processes with that
folder on the path, the way a user's installed plug-in would be found.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers.shards import ShardFactory

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

PLUGIN_MODULE = '''
"""A third-party voice encoder for s2f: per-frame spectra through a 1-D convolution, mean over time."""

import torch
import torch.nn as nn

from s2f import ENCODERS
from s2f.encoders import VoiceEncoder


class SpectrumConvEncoder(VoiceEncoder):
    def __init__(self, embed_dim: int = 4096, width: int = 256, num_bins: int = 257) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.conv = nn.Conv1d(2 * num_bins, width, kernel_size=5, padding=2)
        self.head = nn.Linear(width, embed_dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        batch, planes, frames, bins = spec.shape
        per_frame = spec.permute(0, 1, 3, 2).reshape(batch, planes * bins, frames)
        return self.head(torch.relu(self.conv(per_frame)).mean(dim=-1))


@ENCODERS.register("plugin_spectrum")
def plugin_spectrum(**overrides) -> SpectrumConvEncoder:
    """A 1-D convolution over whole spectra (registered by the module)."""
    return SpectrumConvEncoder(**overrides)


@ENCODERS.register("plugin_spectrum_tiny")
def plugin_spectrum_tiny(**overrides) -> SpectrumConvEncoder:
    """The same at width 16 and 64-D."""
    return SpectrumConvEncoder(**{"embed_dim": 64, "width": 16, **overrides})


def narrow(**overrides) -> SpectrumConvEncoder:
    """Width 8 and 64-D (registered as a builder entry point)."""
    return SpectrumConvEncoder(**{"embed_dim": 64, "width": 8, **overrides})
'''


def _write_distribution(root: Path, name: str, module: str, module_source: str, entry_points: dict[str, str]) -> Path:
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text(textwrap.dedent(module_source))
    points = "\n".join(f'{key} = "{value}"' for key, value in entry_points.items())
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=70.1"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"

            [tool.setuptools]
            packages = ["{module}"]

            [project.entry-points."s2f.encoders"]
            """
        )
        + points
        + "\n"
    )
    return root


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed good and broken plug-ins, as pip lays them out."""
    root = tmp_path_factory.mktemp("plugins")
    good = _write_distribution(
        root / "good",
        "s2f-spectrum-plugin",
        "s2f_spectrum_plugin",
        PLUGIN_MODULE,
        {"spectrum": "s2f_spectrum_plugin", "plugin_spectrum_narrow_tiny": "s2f_spectrum_plugin:narrow"},
    )
    broken = _write_distribution(
        root / "broken",
        "s2f-broken-plugin",
        "s2f_broken_plugin",
        'raise ImportError("this plug-in is broken on purpose")\n',
        {"broken": "s2f_broken_plugin"},
    )
    site = root / "site"
    # No network (--no-index), the test environment's setuptools (--no-build-isolation), and a
    # separate folder (--target), so nothing is installed into the environment running the tests.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), str(good), str(broken)],
        check=True,
    )  # fmt: skip
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "s2f_broken_plugin-0.1.0.dist-info",
        "s2f_spectrum_plugin-0.1.0.dist-info",
    ]
    return site


@pytest.fixture(scope="module")
def shards(shard_factory: ShardFactory) -> Path:
    return shard_factory.toy(speakers=6, clips_per_speaker=2, held_out=1)


def _s2f(plugin_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_path), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "s2f", *args], env=env, capture_output=True, text=True, check=False)


def _plugin_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "skipped encoder plug-in" in line]


def _fit(plugin_path: Path, shards: Path, out: Path, encoder: str) -> subprocess.CompletedProcess[str]:
    return _s2f(
        plugin_path,
        "fit", "--config", str(RECIPES / "debug.yaml"), "--model.init_args.encoder", encoder,
        "--data.init_args.data_dir", str(shards), "--data.init_args.clip_seconds", "1",
        "--data.init_args.batch_size", "4", "--trainer.max_epochs", "2",
        "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
    )  # fmt: skip


def _trained(out: Path) -> tuple[list[float], dict]:
    (metrics,) = out.glob("debug/version_*/metrics.csv")
    with metrics.open() as handle:
        losses = [float(row["train/loss_epoch"]) for row in csv.DictReader(handle) if row.get("train/loss_epoch")]
    (checkpoint,) = out.glob("debug/version_*/checkpoints/last.ckpt")
    return losses, torch.load(checkpoint, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_installed_plugin_is_listed_with_its_package_and_the_broken_one_warns_once(plugin_path: Path) -> None:
    listed = _s2f(plugin_path, "models", "*spectrum*")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert set(rows) == {"plugin_spectrum", "plugin_spectrum_tiny", "plugin_spectrum_narrow_tiny"}
    params = (2 * 257 * 16 * 5 + 16) + (16 * 64 + 64)  # the tiny one's convolution and head: 42,224
    assert rows["plugin_spectrum_tiny"][:6] == [  # name, kind, params, unit, embed, package
        "plugin_spectrum_tiny", "encoder", f"{params / 1e3:.1f}", "k", "64", "s2f-spectrum-plugin"
    ]  # fmt: skip
    assert rows["plugin_spectrum"][4:6] == ["4096", "s2f-spectrum-plugin"]
    (warning,) = _plugin_warnings(listed.stderr)
    assert "'broken'" in warning and "broken on purpose" in warning

    everything = _s2f(plugin_path, "models", "--kind", "encoder", "--tiny")
    assert everything.returncode == 0, everything.stderr
    for builtin in ("s2f_cnn_tiny", "s2f_conformer_tiny", "s2f_resnet18_tiny", "plugin_spectrum_tiny"):
        assert builtin in everything.stdout
    assert len(_plugin_warnings(everything.stderr)) == 1


@pytest.mark.slow
def test_plugin_encoder_trains_through_the_cli_by_name_and_by_class_path(
    plugin_path: Path, shards: Path, tmp_path: Path
) -> None:
    by_name = _fit(plugin_path, shards, tmp_path / "by_name", "plugin_spectrum_tiny")
    assert by_name.returncode == 0, by_name.stderr[-3000:]
    assert len(_plugin_warnings(by_name.stderr)) == 1  # the broken plug-in, once; the run goes on
    losses, checkpoint = _trained(tmp_path / "by_name")
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert checkpoint["s2f"]["encoder"] == {
        "class_path": "s2f_spectrum_plugin.SpectrumConvEncoder",
        "init_args": {"embed_dim": 64, "width": 16, "num_bins": 257},
    }

    class_path = {"class_path": "s2f_spectrum_plugin.SpectrumConvEncoder", "init_args": {"embed_dim": 64, "width": 8}}
    by_class = _fit(plugin_path, shards, tmp_path / "by_class", json.dumps(class_path))
    assert by_class.returncode == 0, by_class.stderr[-3000:]
    losses, checkpoint = _trained(tmp_path / "by_class")
    assert len(losses) == 2
    assert checkpoint["s2f"]["encoder"]["init_args"]["width"] == 8
    assert checkpoint["state_dict"]["encoder.conv.weight"].shape == (8, 2 * 257, 5)

"""Bundled recipes: one copy (the repository's recipes/, which the wheel carries), found by name, listed, copied out."""

from __future__ import annotations

from pathlib import Path

import pytest

import s2f
from s2f.cli import lightning_commands, main
from s2f.cli.recipes_command import with_recipe_paths
from s2f.errors import ConfigError
from s2f.train.bundled_recipes import recipe_dir, recipe_names, recipe_path, recipe_summary, resolve_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(path.stem for path in (ROOT / "recipes").glob("*.yaml"))


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, as a user of the installed package starts in."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_checkout_reads_the_repository_recipes_which_are_the_ones_the_wheel_carries() -> None:
    # setup.py maps recipes/ into the package as s2f/recipes/; tests/package/test_wheel.py checks the wheel's copy.
    assert recipe_dir() == ROOT / "recipes"
    assert recipe_names() == RECIPES and {"paper", "debug", "decoder"} <= set(RECIPES)
    assert recipe_path("paper") == recipe_path("paper.yaml") == ROOT / "recipes" / "paper.yaml"


def test_a_name_is_a_bundled_recipe_and_a_path_is_a_path(elsewhere: Path) -> None:
    assert resolve_recipe("paper") == resolve_recipe("paper.yaml") == str(ROOT / "recipes" / "paper.yaml")
    (elsewhere / "paper").write_text("seed_everything: 1\n")  # a file of that name wins over the bundled one
    assert resolve_recipe("paper") == "paper"
    mine = elsewhere / "mine.yaml"
    mine.write_text("seed_everything: 2\n")
    assert resolve_recipe(str(mine)) == str(mine) and resolve_recipe("mine.yaml") == "mine.yaml"
    inline = "{trainer: {max_epochs: 1}}"  # LightningCLI also takes a config as a string
    assert resolve_recipe(inline) == inline


def test_a_recipe_that_is_neither_a_file_nor_bundled_is_one_line_naming_the_bundled_ones(elsewhere: Path) -> None:
    with pytest.raises(ConfigError, match=r"^'papr' is neither a file nor a bundled recipe \(conformer, .*paper"):
        resolve_recipe("papr")
    # The docs' spelling, from a folder without the repository: the bundled recipe of that name is the fix.
    with pytest.raises(ConfigError, match=r"^recipes/paper\.yaml: no such recipe file \(`paper` is a bundled recipe"):
        resolve_recipe("recipes/paper.yaml")
    with pytest.raises(ConfigError, match=r"^mine/other\.yaml: no such recipe file \(bundled: conformer"):
        resolve_recipe("mine/other.yaml")
    assert main(["run", "papr"]) == 2


def test_recipe_names_become_paths_in_the_lightning_commands_arguments(elsewhere: Path) -> None:
    paper, debug, gpu = (str(ROOT / "recipes" / f"{name}.yaml") for name in ("paper", "debug", "gpu"))
    args = ["paper", "debug", "-c", "gpu", "--config=paper", "--trainer.max_epochs", "1"]
    assert with_recipe_paths(args, leading_recipes=True) == [
        paper, debug, "-c", gpu, f"--config={paper}", "--trainer.max_epochs", "1",
    ]  # fmt: skip
    # Only `s2f run` takes recipes before its options; elsewhere a bare word is LightningCLI's business.
    assert with_recipe_paths(["fit", "--config", "debug"]) == ["fit", "--config", debug]


def test_run_and_fit_take_bundled_recipe_names(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(lightning_commands, "lightning", lambda args: ran.append(args) or 0)
    assert main(["run", "paper", "debug", "--trainer.max_epochs", "1"]) == 0
    assert main(["fit", "--config", "paper", "-c", "debug"]) == 0
    assert main(["-c", "debug", "fit"]) == 0
    paper, debug = (str(ROOT / "recipes" / f"{name}.yaml") for name in ("paper", "debug"))
    assert ran == [
        ["fit", "--config", paper, "--config", debug, "--trainer.max_epochs", "1"],
        ["fit", "--config", paper, "-c", debug],
        ["-c", debug, "fit"],
    ]


def test_run_prints_the_stacked_bundled_recipes_from_an_empty_folder(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "paper", "debug", "--print_config"])
    assert exited.value.code == 0
    stacked = capsys.readouterr().out
    assert "encoder: s2f_cnn_tiny" in stacked and "lambda_distill: 200.0" in stacked


def test_each_recipe_says_what_it_is_in_a_few_words() -> None:
    assert recipe_summary(recipe_path("paper")) == "Speech2Face as in the paper (Oh et al., CVPR 2019)"
    assert recipe_summary(recipe_path("debug")) == "Tiny variants on the CPU"
    summaries = {name: recipe_summary(recipe_path(name)) for name in recipe_names()}
    assert all(0 < len(text) <= 80 for text in summaries.values()), summaries


def test_s2f_recipes_lists_them_and_copies_them_out(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(f"\n  {name} " in listed for name in RECIPES) and "Speech2Face as in the paper" in listed
    assert main(["recipes", "--copy", "mine"]) == 0
    copies = sorted((elsewhere / "mine").iterdir())
    assert [path.name for path in copies] == [f"{name}.yaml" for name in RECIPES]
    assert all(path.read_bytes() == recipe_path(path.stem).read_bytes() for path in copies)
    assert f"copied {len(RECIPES)} recipes to mine" in capsys.readouterr().out

    (elsewhere / "mine" / "paper.yaml").write_text("# edited\n")
    assert main(["recipes", "--copy", "mine"]) == 0  # an edited copy is kept
    assert (elsewhere / "mine" / "paper.yaml").read_text() == "# edited\n"
    assert f"kept {len(RECIPES)} that were there" in capsys.readouterr().out
    assert main(["recipes", "--copy", "mine", "--force"]) == 0
    assert (elsewhere / "mine" / "paper.yaml").read_bytes() == recipe_path("paper").read_bytes()
    with pytest.raises(SystemExit):
        main(["recipes", "--force"])


def test_the_version_is_one_value(capsys: pytest.CaptureFixture[str]) -> None:
    from s2f._version import __version__
    from s2f.shards.format import ShardManifest

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"s2f {__version__}\n"
    assert s2f.__version__ == __version__ != "0+unknown"
    assert ShardManifest("root", "vggface_tiny", 64, {}).s2f_version == __version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "s2f._version.__version__" }' in pyproject

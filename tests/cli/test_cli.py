"""The ``s2f`` command: the table of subcommands, their --help, and options generated from signatures."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

from s2f.cli import COMMANDS, eval_command, lightning_commands, main, prepare_command, synth_command
from s2f.cli._options import Flag, FunctionOptions
from s2f.eval import EvalOptions, evaluate
from s2f.eval.context import ProtocolOptions
from s2f.model.inference import InferenceSettings
from s2f.prepare import DecodeOptions, PrepareOptions, prepare
from s2f.synth import WorldSpec, synthesize_world


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    """The parser's options, less help and the config file's own (cli.config_file)."""
    return {action.dest for action in parser._actions if action.dest not in ("help", "config", "print_config")}


def _keywords(function: Any, skip: tuple[str, ...] = ()) -> set[str]:
    """A function's keywords; for ``prepare``, each option group's fields instead of the group."""
    groups = {field.name: field.default for field in dataclasses.fields(PrepareOptions)} if function is prepare else {}
    names = set()
    for name, parameter in inspect.signature(function).parameters.items():
        if name in skip or parameter.kind is parameter.VAR_KEYWORD:
            continue
        names.update(field.name for field in dataclasses.fields(groups[name])) if name in groups else names.add(name)
    return names


def test_every_command_in_the_table_has_its_function() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        assert callable(command.load()), command
        assert command.help and "\n" not in command.help


def test_s2f_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"\n  {command.name} " in listed for command in COMMANDS)
    assert main([]) == 2  # nothing asked: the same text, as an error


@pytest.mark.parametrize("name", [command.name for command in COMMANDS])
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main([name, "--help"])
    except SystemExit as exited:  # argparse and LightningCLI exit after printing help
        status = exited.code
    assert status == 0
    assert "usage:" in capsys.readouterr().out


def test_an_unknown_command_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepair", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip() == "s2f: error: no command 'prepair'; `s2f --help` lists them"


@pytest.mark.slow  # two fresh interpreters: about 5 s
def test_the_console_script_and_python_m_run_the_table() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "s2f"]
    assert script.load() is main
    done = subprocess.run([sys.executable, "-m", "s2f", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "predict-lightning" in done.stdout


# -- options generated from signatures ------------------------------------------------------------------------


def test_prepare_options_are_its_keywords_and_option_fields() -> None:
    options = prepare_command._options()
    parser = prepare_command._parser(options)
    inputs = {"avspeech", "voxceleb", "folder", "manifest", "pairs", "videos", "voxceleb_meta", "split"}
    assert _dests(parser) - inputs == _keywords(prepare, skip=("tasks",))


def test_eval_and_synth_options_are_their_keywords() -> None:
    # evaluate's options group, whose inference settings and protocols are groups of their own
    eval_fields = {field.name for field in dataclasses.fields(EvalOptions)} - {"inference", "protocols"}
    eval_fields |= {field.name for field in dataclasses.fields(InferenceSettings)}
    eval_fields |= {field.name for field in dataclasses.fields(ProtocolOptions)}
    assert (
        _dests(eval_command._parser(eval_command._options())) - {"model", "device", "wandb"}
        == _keywords(evaluate, skip=("model", "logger", "options")) | eval_fields
    )
    synth_options = _dests(synth_command._parser(synth_command._options()))
    world_fields = {field.name for field in dataclasses.fields(WorldSpec)}
    assert synth_options - {"quick", "reference"} == _keywords(synthesize_world, skip=("world",)) | world_fields


@dataclasses.dataclass(frozen=True)
class Knobs:
    """Extra knobs.

    Attributes:
        depth: How deep, in ``layers``.
        mode: Which way.
    """

    depth: int = 3
    mode: Literal["fast", "slow"] = "fast"


def build(out_dir: str, *, rate: float = 0.5, sizes: tuple[int, ...] = (1, 2), knobs: Knobs | None = None,
          progress: bool = True) -> None:  # fmt: skip
    """Builds it.

    Args:
        out_dir: Where.
        rate: How fast, per
            second.
        sizes: Which sizes.
        knobs: More.
        progress: Show a progress bar.
    """


def test_a_new_keyword_becomes_an_option_with_its_docstring_and_default() -> None:
    options = FunctionOptions(build, flags={"out_dir": Flag(("--out",))})
    parser = argparse.ArgumentParser(prog="build")
    options.add_to(parser)
    text = parser.format_help()
    assert "How fast, per second. (default: 0.5)" in text and "How deep, in layers. (default: 3)" in text
    assert "knobs (extra knobs)" in text and "--no-progress" in text and "{fast,slow}" in text
    parsed = parser.parse_args(["--out", "o", "--rate", "2", "--sizes", "4", "5", "--mode", "slow", "--no-progress"])
    assert options.kwargs(parsed) == {
        "out_dir": "o",
        "rate": 2.0,
        "sizes": (4, 5),
        "knobs": Knobs(depth=3, mode="slow"),
        "progress": False,
    }
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --out has no default: required
    with pytest.raises(ValueError, match="no keyword"):
        FunctionOptions(build, flags={"speed": Flag()})


def test_the_old_flag_spellings_still_parse() -> None:
    options = prepare_command._options()
    old = ["--avspeech", "a.csv", "--videos", "v", "--out", "o", "--frames", "2", "--min-face", "80", "--workers", "0"]
    old += ["--no-progress", "--devices", "0,1", "--teacher-weights", "w.pth", "--max-seconds", "3", "--part-size", "5"]
    kwargs = options.kwargs(prepare_command._parser(options).parse_args(old))
    assert (kwargs["out_dir"], kwargs["teacher"], kwargs["teacher_weights"]) == ("o", "vggface", "w.pth")
    assert kwargs["decode"] == DecodeOptions(max_seconds=3.0, num_frames=2)
    assert (kwargs["face"].min_face_size, kwargs["shards"].part_size) == (80.0, 5)
    assert (kwargs["compute"].num_workers, kwargs["compute"].progress, kwargs["compute"].devices) == (0, False, "0,1")
    two = prepare_command._parser(options).parse_args(["--folder", "f", "--out", "o", "--devices", "2"])
    assert options.kwargs(two)["compute"].devices == 2

    evaluation = eval_command._options()
    parsed = eval_command._parser(evaluation).parse_args(["-m", "m", "--data", "d", "--quiet", "--seconds", "3"])
    kwargs = evaluation.kwargs(parsed)
    chosen = kwargs["options"]  # evaluate's EvalOptions, from the same flat flags
    assert (kwargs["data_dir"], kwargs["out_dir"], chosen.progress, chosen.seconds) == (
        "d",
        "runs/eval",
        False,
        (3.0,),
    )

    synth = synth_command._options()
    parsed = synth_command._parser(synth).parse_args(["--out", "w", "--clips", "4", "--seed", "7"])
    assert (parsed.clips_per_identity, parsed.identities) == (4, None)  # None: --quick or WorldSpec's default decides
    parsed.identities, parsed.seconds = 5, 2.0
    assert synth.kwargs(parsed)["world"] == WorldSpec(identities=5, clips_per_identity=4, seconds=2.0, seed=7)


def test_prepare_takes_its_old_keywords_or_the_option_groups() -> None:
    flat = PrepareOptions.from_keywords({}, {"max_seconds": 3.0, "num_workers": 0, "landmarks": "mtcnn5"})
    grouped = PrepareOptions.from_keywords({"decode": DecodeOptions(max_seconds=3.0)}, {"num_workers": 0})
    assert flat.decode == grouped.decode and flat.compute == grouped.compute and flat.face.landmarks == "mtcnn5"
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_second'"):
        prepare([], "unused", "dlib_resnet", max_second=3.0)
    with pytest.raises(ValueError, match="min_seconds <= max_seconds"):
        DecodeOptions(max_seconds=2.0)


# -- prediction: audio, or LightningCLI's -------------------------------------------------------------------------


def test_predict_with_a_recipe_is_lightnings_predict_for_one_more_release(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").touch()  # a recipe given by path reaches LightningCLI as given
    ran: list[list[str]] = []
    monkeypatch.setattr(lightning_commands, "lightning", lambda args: ran.append(args) or 0)
    assert main(["predict-lightning", "--config", "r.yaml", "--ckpt_path", "c.ckpt"]) == 0
    with pytest.warns(FutureWarning, match="s2f predict-lightning"):
        assert main(["predict", "--config", "r.yaml", "--ckpt_path=c.ckpt"]) == 0
    assert main(["--config", "r.yaml", "fit"]) == 0  # LightningCLI's own options before its subcommand
    assert ran == [
        ["predict", "--config", "r.yaml", "--ckpt_path", "c.ckpt"],
        ["predict", "--config", "r.yaml", "--ckpt_path=c.ckpt"],
        ["--config", "r.yaml", "fit"],
    ]


def test_run_stacks_recipes_as_config_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).touch()
    ran: list[list[str]] = []
    monkeypatch.setattr(lightning_commands, "lightning", lambda args: ran.append(args) or 0)
    assert main(["run", "a.yaml", "b.yaml", "--trainer.max_steps", "2"]) == 0
    assert ran == [["fit", "--config", "a.yaml", "--config", "b.yaml", "--trainer.max_steps", "2"]]
    with pytest.raises(SystemExit) as exited:
        main(["run", "--trainer.max_steps", "2"])
    assert exited.value.code == 2

"""One option builder for every command (s2f.cli.command_parser): every parser is its, every --help works, and
an option's old spelling keeps working for one release with one line saying what to write instead."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from s2f.cli import COMMANDS, main
from s2f.cli.command_parser import CommandParser, Option, build_parser, parse
from s2f.cli.config_file import REMOVED_IN

# LightningCLI builds the parsers of these itself, from the recipes' classes (jsonargparse).
LIGHTNING = {command.name for command in COMMANDS if command.module == "lightning_commands"} - {"run"}
OWN = [command for command in COMMANDS if command.name not in LIGHTNING]


def _parser_of(name: str) -> argparse.ArgumentParser:
    (command,) = [c for c in COMMANDS if c.name == name]
    module = importlib.import_module(f"s2f.cli.{command.module}")
    return module.run_parser() if name == "run" else module.parser()


@pytest.mark.parametrize("name", [command.name for command in OWN])
def test_every_own_command_parser_is_made_by_the_builder(name: str) -> None:
    parser = _parser_of(name)
    assert isinstance(parser, CommandParser), f"s2f {name} writes its own argparse"
    assert parser.prog == f"s2f {name}"
    # Every option has help text, and a default worth showing is shown in one style.
    for action in parser._actions:
        assert action.help, (name, action.dest)
        if action.help is argparse.SUPPRESS:
            continue
        assert "(default: None)" not in action.help and "default: None" not in action.help, (name, action.dest)


# LightningCLI's commands' --help: tests/cli/test_cli.py::test_every_command_has_help.
@pytest.mark.parametrize("name", [command.name for command in OWN])
def test_help_works_for_every_own_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main([name, "--help"])
    except SystemExit as exited:  # argparse exits after printing help; `s2f run` prints it and returns
        status = exited.code
    assert status == 0
    assert capsys.readouterr().out.startswith(f"usage: s2f {name} ")


def test_the_commands_take_their_options_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    parsed = parse(_parser_of("models"), ["conformer*", "--kind", "encoder", "--full"])
    assert (parsed.pattern, parsed.kind, parsed.tiny) == ("conformer*", "encoder", False)
    assert parse(_parser_of("models"), []).pattern == "*" and parse(_parser_of("models"), ["--tiny"]).tiny is True
    with pytest.raises(SystemExit):
        parse(_parser_of("models"), ["--tiny", "--full"])  # one or the other
    assert "not allowed with argument --tiny" in capsys.readouterr().err

    exported = parse(_parser_of("export"), ["run.ckpt", "out", "--calibrate-on", "s", "--onnx"])
    assert (exported.checkpoint, exported.output, exported.calibrate_on, exported.onnx) == (
        "run.ckpt",
        "out",
        "s",
        True,
    )
    assert exported.calibration_split == "train" and exported.inference_precision == "auto"
    predicted = parse(_parser_of("predict"), ["-m", "m", "a.wav", "b.wav", "-o", "e.npy", "--seconds", "3"])
    assert (predicted.audio, predicted.output, predicted.seconds, predicted.batch_size) == (["a.wav", "b.wav"], "e.npy",
                                                                                           3.0, 16)  # fmt: skip
    served = parse(_parser_of("serve"), ["--port", "8080", "--compile"])
    assert (served.port, served.compile, served.host, served.top_k) == (8080, True, "127.0.0.1", 5)
    assert parse(_parser_of("check"), ["shards/"]).shards == "shards/"
    assert parse(_parser_of("recipes"), ["--copy", "r", "--force"]).force is True


def test_a_type_error_is_argparse_one_line_in_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["serve", "--port", "many"], ["predict", "-m", "m", "a.wav", "--batch-size", "two"]):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"s2f {args[0]}: error: argument --") and "invalid int value" in err, err


def test_an_old_spelling_parses_as_the_new_one_with_a_notice(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser(
        "s2f scale",
        "Scale.",
        Option("inference_precision", "how", choices=("a", "b"), default="a", deprecated=("--precision",)),
    )
    assert parse(parser, ["--precision", "b"]).inference_precision == "b"
    notice = capsys.readouterr().err.strip()
    assert notice == f"s2f scale: --precision is now --inference-precision; the old spelling goes in s2f {REMOVED_IN}"
    assert "--precision" not in parser.format_help()  # not offered any more
    with pytest.raises(SystemExit):
        parse(parser, ["--precision", "c"])  # checked as the new spelling is
    assert parse(parser, []).inference_precision == "a" and capsys.readouterr().err.count("is now") == 0


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_the_old_precision_flag_of_predict_and_eval_still_works(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["-m", "m", "a.wav"] if command == "predict" else ["-m", "m", "--data", "d"]
    old = parse(_parser_of(command), [*base, "--precision", "fp32"])
    assert "--precision is now --inference-precision" in capsys.readouterr().err
    assert old == parse(_parser_of(command), [*base, "--inference-precision", "fp32"])


def test_an_eval_config_file_written_with_precision_still_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text("model: m\ndata_dir: d\nprecision: fp32\n")  # as --print_config wrote it before the rename
    with pytest.raises(SystemExit):
        main(["eval", "--config", str(config), "--print_config"])
    captured = capsys.readouterr()
    assert "inference_precision: fp32" in captured.out.splitlines()
    assert "precision is now inference_precision" in captured.err and str(config) in captured.err
    config.write_text("model: m\ndata_dir: d\nprecision: fp16\n")
    assert main(["eval", "--config", str(config)]) == 2
    assert "precision (--inference-precision) is one of auto, bf16, fp32, int8, not 'fp16'" in capsys.readouterr().err

"""EvalOptions and ProtocolOptions: each protocol setting is declared once, and every old door reaches it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from s2f.cli import eval_command, main
from s2f.cli.config_file import parse_with_config
from s2f.eval import EvalOptions
from s2f.eval.context import ProtocolOptions


def test_the_protocol_settings_are_declared_once() -> None:
    evaluation = {field.name for field in dataclasses.fields(EvalOptions)}
    protocols = {field.name for field in dataclasses.fields(ProtocolOptions)}
    assert "protocols" in evaluation and evaluation & protocols == set()
    assert EvalOptions().protocols == ProtocolOptions()


def test_the_keyword_call_puts_a_protocol_setting_into_the_protocols() -> None:
    chosen = EvalOptions(seed=1).with_keywords(gallery_size=20, evaluator="off", seed=3)
    assert chosen.seed == 3
    assert chosen.protocols == ProtocolOptions(gallery_size=20, evaluator="off")
    # A whole ProtocolOptions and one of its settings together: the setting wins, the rest come along.
    given = ProtocolOptions(gallery_draws=2, identity_splits=3)
    both = EvalOptions().with_keywords(protocols=given, identity_splits=4)
    assert both.protocols == ProtocolOptions(gallery_draws=2, identity_splits=4)
    with pytest.raises(TypeError, match="unexpected keyword arguments: gallery"):
        EvalOptions().with_keywords(gallery=20)


def test_eval_flags_and_config_keys_stay_flat_and_build_the_protocols(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text("model: m\ndata_dir: d\ngallery_size: 9\nidentity_splits: 3\n")
    args = ["--config", str(config), "--gallery-size", "11", "--matching-resamples", "50"]
    options = eval_command._options()
    chosen = options.kwargs(parse_with_config(eval_command._parser(options), args))["options"]
    assert chosen.protocols == ProtocolOptions(gallery_size=11, matching_resamples=50, identity_splits=3)

    with pytest.raises(SystemExit) as stopped:
        main(["eval", *args, "--print_config"])
    assert stopped.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["gallery_size"], printed["matching_resamples"], printed["identity_splits"]) == (11, 50, 3)
    assert "protocols" not in printed

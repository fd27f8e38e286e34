"""The demo encoder's step benchmark: its two forms of the power law are the same numbers, its parts add up, and it
times every variant of the step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.scripts import benchmark_module
from s2f.audio import spectrogram
from s2f.audio.envelope import spectral_envelope


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("demo_encoder_step") as module:
        yield module


def test_the_pow_form_is_swapped_in_and_gives_the_same_numbers(bench) -> None:
    wave = torch.randn(2, 16_000) * 0.1
    shipped = spectrogram.SpectrogramFrontend()(wave)
    with bench.power_law("pow"):
        assert spectrogram.signed_power is bench._pow_form
        swapped = spectrogram.SpectrogramFrontend()(wave)
    assert spectrogram.signed_power is not bench._pow_form  # restored
    torch.testing.assert_close(swapped, shipped, rtol=1e-5, atol=1e-6)


def test_the_envelope_by_ffts_is_the_shipped_envelope_computed_the_old_way(bench) -> None:
    spec = spectrogram.SpectrogramFrontend()(torch.randn(2, 16_000) * 0.1)
    shipped = spectral_envelope(spec, bins=129)
    torch.testing.assert_close(bench.envelope_by_ffts(spec, bins=129), shipped, rtol=1e-4, atol=1e-5)
    with bench.envelope_form("ffts"):
        from s2f.encoders import conformer

        assert conformer.spectral_envelope is bench.envelope_by_ffts


def test_the_parts_and_the_rest_make_the_step(bench, tmp_path: Path) -> None:
    result = bench.main(["--quick", "--json", str(tmp_path / "step.json")])
    written = json.loads((tmp_path / "step.json").read_text())
    assert [part["part"] for part in written["parts"]][:4] == [
        "rooms and microphones (the recipe's share)",
        "STFT front end",
        "pitch tracker (inverse STFT + YIN)",
        "spectral envelope",
    ]
    assert sum(part["ms"] for part in written["parts"]) == pytest.approx(result["step_ms"]["as shipped"])
    assert sum(part["share"] for part in written["parts"]) == pytest.approx(1.0)
    assert list(written["step_times_s"]) == list(bench.STEP_VARIANTS) and written["ratios"]["as shipped"] == 1.0

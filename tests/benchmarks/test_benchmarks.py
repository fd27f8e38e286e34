"""The encoder throughput benchmark runs, and its FLOP counts and ratios add up (never its timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from helpers.scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("encoder_throughput") as module:
        yield module


def test_flop_count_matches_hand_count(bench) -> None:
    batch, in_channels, out_channels, kernel, height, width, embed = 2, 2, 3, 4, 10, 9, 5
    out_h, out_w = height - kernel + 1, width - kernel + 1
    conv = nn.Conv2d(in_channels, out_channels, kernel)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(out_channels * out_h * out_w, embed))
    inputs = torch.randn(batch, in_channels, height, width)
    forward, train = bench.count_flops(model, inputs, torch.randn(batch, embed))

    conv_flops = 2 * batch * out_channels * out_h * out_w * in_channels * kernel * kernel
    linear_flops = 2 * batch * out_channels * out_h * out_w * embed
    assert forward == conv_flops + linear_flops
    # Backward: the linear layer needs input and weight gradients; the conv, fed by data, only weights.
    assert train == 2 * conv_flops + 3 * linear_flops
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow  # the benchmark's whole quick mode
def test_quick_run_reports_sane_rows(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    rows = bench.main(
        ["--quick", "--models", "s2f_cnn_tiny", "--warmup", "0", "--matmul-size", "256", "--json", str(out)]
    )

    assert [(row.model, row.dtype) for row in rows] == [("s2f_cnn_tiny", "fp32"), ("s2f_cnn_tiny", "bf16")]
    fp32, bf16 = rows
    for row in rows:
        assert row.samples_per_s > 0 and row.matmul_tflops > 0 and row.stft_ms_per_sample > 0
        assert 2 * row.gflop_fwd < row.gflop_train <= 3 * row.gflop_fwd
        assert row.achieved_tflops == pytest.approx(row.gflop_train * row.samples_per_s / 1e3)
        assert row.ratio == pytest.approx(row.achieved_tflops / row.matmul_tflops)
    assert (fp32.gflop_fwd, fp32.gflop_train, fp32.params_m) == (bf16.gflop_fwd, bf16.gflop_train, bf16.params_m)

    printed = capsys.readouterr().out
    for title in ("samples/s", "GFLOP/sample fwd", "GFLOP/sample train", "achieved TFLOP/s", "matmul TFLOP/s", "ratio"):
        assert title in printed
    report = json.loads(out.read_text())
    assert report["machine"]["torch"] == torch.__version__
    assert set(report["matmul_tflops"]) == {"fp32", "bf16"}
    assert len(report["rows"]) == 2 and report["rows"][0]["step_times_s"]

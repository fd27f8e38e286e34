"""benchmarks/demo_quality.py: the README's demo table from finished runs, its statistics and its seed guard."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from PIL import Image

from helpers.scripts import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("demo_quality") as module:
        yield module


def _metrics(seed: int, r1: float, r10: float, angle: float) -> dict:
    """A metrics.json as `s2f eval` writes it, reduced to the sections the headline reads."""
    cos = {"R@1": r1, "R@5": (r1 + r10) / 2, "R@10": r10, "chance@1": 1 / 60, "chance@5": 5 / 60,
           "chance@10": 10 / 60, "gallery_size": 60.0}  # fmt: skip
    return {
        "seconds": ["3s", "6s"],
        "data": {"seed": seed},
        "retrieval": {"6s": {"cos": cos}},
        "similarity": {"6s": {"angle_deg": {"mean": angle}}},
        "baseline": {"similarity": {"angle_deg": {"mean": 19.6}}, "retrieval": {"cos": {"R@1": 0.0, "R@10": 0.0}}},
        "consistency": {"6s": {"rank1": 0.4, "rank1_chance": 2 / 179, "eer": 0.1}},
        "craniofacial": {"correlations": {"a": {"r": 0.4, "shuffled_r": 0.01}, "b": {"r": 0.5, "shuffled_r": -0.01}}},
        "demographics": {
            "gender": {"agreement": 0.8, "chance": 0.5},
            "age": {"mean_age_s2f": 30.0 + seed, "mean_age_true": 31.0},
            "f2f": {"gender": {"agreement": 0.88}, "mean_age": 30.0},
            "recorded_gender_agreement": {"true": 0.7, "s2f": 0.75},
        },
        "face_identity": {"f2f": {"R@1": 0.9, "R@10": 1.0}, "s2f": {"R@1": 0.05, "R@10": 0.3}},
    }


def _runs(root: Path) -> list[Path]:
    """Three finished runs with known figures, their times and loads, and their references."""
    folders = []
    for seed, r1, r10, angle, wall in ((1, 0.10, 0.50, 18.0, 500.0), (2, 0.12, 0.56, 18.5, 700.0),
                                       (3, 0.08, 0.53, 18.9, 600.0)):  # fmt: skip
        folder = root / f"seed{seed}"
        (folder / "eval").mkdir(parents=True)
        (folder / "eval" / "metrics.json").write_text(json.dumps(_metrics(seed, r1, r10, angle)))
        (folder / "quality.json").write_text(json.dumps({"seed": seed, "wall_s": wall, "load": [2.0, 3.0]}))
        reference = {"recall_at_1": 0.2, "recall_at_5": 0.4, "recall_at_10": 0.6, "angle_deg": 17.0,
                     "angle_below_mean_face_deg": 2.6}  # fmt: skip
        (folder / "reference.json").write_text(json.dumps(reference))
        folders.append(folder)
    return folders


def test_the_table_has_every_row_its_spread_interval_and_verdict(bench, tmp_path: Path, capsys) -> None:
    folders = _runs(tmp_path)
    figure = tmp_path / "figure.png"
    argv = ["--runs", *map(str, folders), "--markdown", str(tmp_path / "t.md"), "--json", str(tmp_path / "all.json")]
    assert bench.main([*argv, "--figure", str(figure), "--check"]) == 1  # some targets are missed
    printed = capsys.readouterr().out
    table = (tmp_path / "t.md").read_text()
    assert table.strip() in printed
    lines = table.strip().splitlines()
    assert lines[0].startswith("| held-out voices, 6s, gallery of 60 | mean +/- std, seeds 1, 2, 3 | 95 % interval")
    assert len(lines) == 2 + len(bench.ROWS) + 1  # header, rule, every row, the time

    # R@1: mean 10 %, std 2 %, t(0.975, 2) = 4.303 -> half-width 4.303 * 2 / sqrt(3) = 4.97 points.
    r1 = next(line for line in lines if line.startswith("| speech -> face retrieval R@1 |"))
    cells = [cell.strip() for cell in r1.strip("|").split("|")]
    assert cells[1:] == ["10.0 +/- 2.0 %", "[5.0, 15.0]", ">= 10 % (met)", "20.0 +/- 0.0 %", "0.0 %", "1.7 %"]
    r10 = next(line for line in lines if line.startswith("| R@10 |"))
    assert "53.0 +/- 3.0 %" in r10 and ">= 55 % (not met)" in r10 and "16.7 %" in r10
    angle = next(line for line in lines if line.startswith("| angle below the mean face's |"))
    assert "1.13 +/- 0.45 deg" in angle and "(not met)" in angle and "2.60 +/- 0.00 deg" in angle
    assert "| age gap (faces from voices - true faces) | 1.00 +/- 1.00 years |" in table
    assert "| craniofacial mean Pearson r (S2F vs F2F face) | 0.45 +/- 0.00 |" in table
    assert lines[-1].startswith("| demo time (median; slowest 11 min 40 s, load average 2.5) | 10 min 00 s |")
    assert "<= 12 min (met: slowest run)" in lines[-1]

    numbers = json.loads((tmp_path / "all.json").read_text())
    row = next(r for r in numbers["rows"] if r["key"] == "recall_at_1")
    half = 4.302652729911275 * statistics.stdev([0.10, 0.12, 0.08]) / math.sqrt(3)
    assert row["interval95"] == pytest.approx([0.10 - half, 0.10 + half])
    # A share's interval stays within 0-100 %, however wide three seeds make it.
    for line in lines[2:-1]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[2].endswith("]") and cells[1].endswith("%"):
            low, high = (float(x) for x in cells[2].strip("[]").split(","))
            assert 0.0 <= low <= high <= 100.0, line
    assert bench.interval95([0.84, 0.93, 0.97], (0.0, 1.0)) == pytest.approx((0.7476, 1.0), abs=1e-3)
    with Image.open(figure) as image:
        assert image.width > 400 and image.height > 200


def test_report_seeds_run_only_with_report_and_alone(bench) -> None:
    assert len(bench.REPORT_SEEDS) >= 5 and min(bench.REPORT_SEEDS) >= 100
    assert bench.choose_seeds(None, report=True) == list(bench.REPORT_SEEDS)
    assert bench.choose_seeds([4, 5], report=False) == [4, 5]
    with pytest.raises(SystemExit, match=r"report seeds: run them only for the headline, with --report"):
        bench.choose_seeds([1, bench.REPORT_SEEDS[0]], report=False)
    with pytest.raises(SystemExit, match=r"--report runs the report seeds"):
        bench.choose_seeds([1], report=True)


def test_a_folder_without_a_finished_evaluation_is_named(bench, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"seed9: no eval/metrics.json"):
        bench.read_run(tmp_path / "seed9", lambda folder: None)

"""benchmarks/figure_audit.py: a sourced figure passes, an unsourced one is reported with its file and line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "figure_audit.py"

DOC = """# Speed

The step runs at 3.01x the peer's (`python benchmarks/peer_ve_conv.py --batch-size 8`).

The loader delivers 130-240 clips/s, 8-9 ms of CPU per clip.

Targets are settings, not measurements: R@10 >= 55 %, a demo <= 12 min (target 12 min), 6 s clips.

```text
s2f_cnn  0.228 samples/s  43.4%
```

Retrieval at the paper's scale, from `python benchmarks/retrieval_scale.py`:

| step | seconds |
|---|---|
| matmul | 10.96 s |

| step | seconds |
|---|---|
| recall | 18.73 s |

Reading it:

- bf16 stays within cosine 0.999 of fp32 (`tests/model/test_inference.py::test_bf16_matches_fp32`).
- the tiny encoder reaches 20-50 %.

The card that `s2f demo --out runs/pd` writes, quoted:

> | measure | model |
> |---|---|
> | R@1 | 13.3% |
"""


@pytest.fixture(scope="module")
def audit():
    """The script as a module: benchmarks/ is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location("figure_audit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout with the doc, the benchmarks it names, and one test file (without the test the doc names)."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "speed.md").write_text(DOC, encoding="utf-8")
    (tmp_path / "benchmarks").mkdir()
    for script in ("peer_ve_conv.py", "retrieval_scale.py"):
        (tmp_path / "benchmarks" / script).write_text("print('figures')\n")
    (tmp_path / "tests" / "model").mkdir(parents=True)
    (tmp_path / "tests" / "model" / "test_inference.py").write_text("def test_other():\n    pass\n")
    return tmp_path


def test_reports_unsourced_figures_and_missing_tests_only(audit, repo: Path) -> None:
    findings = audit.audit_file(repo / "docs" / "speed.md", root=repo)

    reported = {(finding.line, finding.figures, finding.problem) for finding in findings}
    assert reported == {
        (5, ("130-240 clips/s", "8-9 ms"), "no producing command"),  # the paragraph names no command
        (21, ("18.73 s",), "no producing command"),  # a table without a caption naming a command
        (25, (), "names tests/model/test_inference.py::test_bf16_matches_fp32, which does not exist"),
        (26, ("20-50 %",), "no producing command"),  # "Reading it:" names no command for its list
    }


def test_a_named_test_that_exists_sources_its_figure(audit, repo: Path) -> None:
    (repo / "tests" / "model" / "test_inference.py").write_text("def test_bf16_matches_fp32():\n    assert True\n")

    lines = {finding.line for finding in audit.audit_file(repo / "docs" / "speed.md", root=repo)}

    assert lines == {5, 21, 26}


def test_main_prints_file_and_line_and_fails_until_every_figure_is_sourced(
    audit, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit.main(["docs/*.md", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "docs/speed.md:5: no producing command for 130-240 clips/s, 8-9 ms: The loader delivers" in out
    assert out.rstrip().endswith("# 4 finding(s) in 1 file(s)")

    sourced = DOC.replace("8-9 ms of CPU per clip.", "8-9 ms of CPU per clip (command: `nox -s bench`).")
    sourced = sourced.replace("Reading it:", "Reading it (`python benchmarks/retrieval_scale.py`):")
    sourced = sourced.replace(
        "| step | seconds |\n|---|---|\n| recall", "Then:\n\n| step | seconds |\n|---|---|\n| recall"
    )
    sourced = sourced.replace("Then:", "Then `pytest tests/model/test_inference.py`:")
    sourced = sourced.replace("::test_bf16_matches_fp32", "")
    (repo / "docs" / "speed.md").write_text(sourced, encoding="utf-8")

    assert audit.main(["docs/speed.md", "--root", str(repo)]) == 0
    assert capsys.readouterr().out == "# 0 finding(s) in 1 file(s)\n"

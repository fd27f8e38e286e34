"""Every measured figure in the prose names the command that produces it: the audit that says where one does not.

A figure is a number with a unit of measurement (%, x, s, ms, min, deg, GFLOP, TFLOP/s, MB, GiB,
samples/s, clips/s, px, ...) in README.md, docs/*.md or benchmarks/README.md. It is *sourced* when
the block it stands in names a producing command:

- a backticked command: ``python benchmarks/...``, ``s2f ...``, ``pytest ...``, ``nox ...``, or a
  test by its path (``tests/<folder>/test_x.py`` or ``tests/<folder>/test_x.py::test_y``);
- or a ``(command: ...)`` marker.

A block is a paragraph, a heading, one table row or one list item. Table rows and list items are
also sourced by their caption: the paragraph right above the table or list. Lines in code blocks
are output, not prose, and are skipped, as are numbers in inline code, in links, and numbers that
state a target (``>= 10 %``, ``target 3x``) or a setting (``6 s clips``, ``95 % interval``).

The audit prints ``file:line: text`` for each unsourced block, and for each named script or test
that does not exist, and exits 1 when there is any. It cannot tell whether the command it finds
prints the figure: that is for the reader of the diff.

    python benchmarks/figure_audit.py                      # README.md, docs/*.md, benchmarks/README.md
    python benchmarks/figure_audit.py docs/eval.md --quiet # one file; only the count
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "Finding", "audit_file", "audit_text", "figures_in", "main", "markdown_blocks", "names_command"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = ("README.md", "docs/*.md", "benchmarks/README.md")

_NUMBER = r"\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
_RANGE = rf"{_NUMBER}(?:\s?(?:-|–|to|and)\s?{_NUMBER})?"
_UNITS = (
    r"%|percent|ms|µs|us|ns|s|sec|seconds?|min|minutes?|h|hours?|days?|deg|degrees?|°"
    r"|[GTMk]?FLOPs?(?:/s)?|[KMGT]i?B(?:/s)?|kB|px|dB|(?:samples|clips|steps|images|faces|it)/s"
    r"|clips a day|times (?:faster|slower|the|as)"
)
FIGURE = re.compile(
    rf"(?<![\w.@/:#^-])(?:[-+]\s?)?{_RANGE}(?:\s?(?:\+/-|±)\s?{_NUMBER})?(?:\s?(?:{_UNITS})|[x×])(?![\w/])",
    re.IGNORECASE,
)
"""A number or range with a unit of measurement: ``3.01x``, ``10.2 +/- 5.6 %``, ``85-103 s``, ``0.2-0.5 clips/s``."""

# A number with a unit that states a setting or a goal, not a measurement.
_TARGET_BEFORE = re.compile(
    r"(?:>=|<=|≥|≤|\btargets?(?: of| is| was)?:?|\bgoal(?: of)?|\bchance(?: level)?(?: is| of)?[:,]?)\s*$",
    re.IGNORECASE,
)
_TARGET_AFTER = re.compile(r"^\s*(?:target|goal)\b", re.IGNORECASE)
_SETTING_AFTER = re.compile(
    r"^[\s-]*(?:interval|confidence|CI\b|clips?\b|waves?\b|waveforms?\b|windows?\b|crops?\b|inputs?\b|segments?\b"
    r"|chunks?\b|hops?\b|voices?\b|audio\b|recordings?\b|utterances?\b|of (?:speech|audio|voice|silence)\b"
    r"|cropped\b|long\b|spectrograms?\b|RAM\b|frames?\b|(?:conv(?:olution)?\s)?(?:sub|down|up)sampl\w*)",
    re.IGNORECASE,
)
# A figure quoted from a paper is the paper's, and the paper is its source.
_QUOTED_BEFORE = re.compile(r"\b(?:the )?paper(?:'s)?(?: reports?| table)?:?\s*(?:about\s*)?[\d.,/\s]*$", re.IGNORECASE)
_SETTING_BEFORE = re.compile(
    r"(?:cropped to|crops? of|padded to|looped to|lengths?|every|timeout(?: of)?|limits?(?: of)?[*:]*|up to|at most"
    r"|\b[NU]\([^)]*)\s*$",  # N(0, 3 deg), U(...): a distribution the code draws from
    re.IGNORECASE,
)

SETTINGS = frozenset({"3 s", "6 s", "25 ms", "10 ms", "1.6 s"})
"""Settings, not measurements: the paper's input lengths, its STFT window and hop, GE2E's partial utterance."""

_CODE_SPAN = re.compile(r"``?([^`]+)``?")
_LINK_TARGET = re.compile(r"\]\([^)]*\)|<?https?://\S+")
_COMMAND_MARKER = re.compile(r"\(command:\s*[^)]+\)", re.IGNORECASE)
_COMMAND = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"  # environment settings: HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 ...
    r"(?:python3?\s+(?:-m\s+pytest\b|\S*(?:benchmarks|docs|examples)/\S+\.py\b)|s2f\s+[a-z][\w-]*\s+\S|pytest\b|nox\b"
    r"|tests/(?:\w+/)*test_\w+\.py(?:::\w+)?$)"
)
_NAMED_FILE = re.compile(r"\b((?:benchmarks|docs|examples|tests)/[\w/.-]+\.py)(?:::(\w+))?")


_CAPTIONED = {"row": "table", "item": "list", "quote": "quotation"}
"""Blocks that take their source from the paragraph right above their container (a quotation: output shown)."""


@dataclass(frozen=True)
class Block:
    """A unit of prose: where it starts, its text, and the caption it may take its source from."""

    line: int
    text: str
    kind: str  # "paragraph", "heading", "row", "item" or "quote"
    caption: str = ""


@dataclass(frozen=True)
class Finding:
    """An unsourced block, or a named script or test that does not exist."""

    path: str
    line: int
    text: str
    figures: tuple[str, ...] = field(default=())
    problem: str = "no producing command"

    def __str__(self) -> str:
        shown = " ".join(self.text.split())
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        what = f"{self.problem} for {', '.join(self.figures)}" if self.figures else self.problem
        return f"{self.path}:{self.line}: {what}: {shown}"


def markdown_blocks(text: str) -> Iterator[Block]:
    """The prose blocks of a markdown document, code blocks left out.

    >>> [(b.line, b.kind) for b in markdown_blocks("# T\\n\\nSome text\\ngoes on.\\n\\n```\\n1 s\\n```\\n- a\\n- b\\n")]
    [(1, 'heading'), (3, 'paragraph'), (9, 'item'), (10, 'item')]
    """
    lines: list[str] = []
    start, kind = 0, "paragraph"
    container, caption, last_paragraph = "", "", ""  # container: "table", "list", "quotation" or "" (none)
    fence = ""

    def flush() -> Iterator[Block]:
        nonlocal lines, last_paragraph
        if lines:
            text = "\n".join(lines)
            yield Block(start, text, kind, caption if kind in _CAPTIONED else "")
            last_paragraph = text if kind == "paragraph" else ""
        lines = []

    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        opening = re.match(r"(`{3,}|~{3,})", stripped)
        if fence:
            fence = "" if opening and stripped.startswith(fence) else fence
            continue
        if opening or not stripped:
            yield from flush()
            container = "" if container != "list" else container  # a blank line ends a table or quotation, not a list
            if opening:  # a code block between a paragraph and a table breaks the caption
                fence, last_paragraph = opening.group(1), ""
            continue
        new_kind = (
            "heading"
            if stripped.startswith("#")
            else "row"
            if stripped.startswith("|")
            else "quote"
            if stripped.startswith(">")
            else "item"
            if re.match(r"(?:[-*+]|\d+[.)])\s", stripped)
            else ""
        )
        indented = line.startswith((" ", "\t"))
        if lines and ((not new_kind and kind != "row") or new_kind == kind == "quote"):
            lines.append(line)  # a paragraph, list item or quotation goes on
            continue
        yield from flush()
        if new_kind in _CAPTIONED:
            wanted = _CAPTIONED[new_kind]
            if container != wanted:  # a table or list starts: the paragraph right above it is its caption
                container, caption = wanted, last_paragraph
            kind = new_kind
        elif new_kind == "heading":
            container, kind = "", "heading"
        elif container == "list" and indented:
            kind = "item"  # a later paragraph of a list item
        else:
            container, kind = "", "paragraph"
        start, lines = number, [line]
        if kind == "heading":
            yield from flush()
            kind = "paragraph"
    yield from flush()


def _without_code_and_links(text: str) -> str:
    text = _LINK_TARGET.sub(lambda m: " " * len(m.group(0)), text)
    return _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def figures_in(text: str) -> list[str]:
    """The measured figures in a piece of prose: numbers with units that are not targets or settings.

    >>> figures_in("R@10 47.8 % (target >= 55 %) on 6 s clips, 3.01x faster, `--seconds 3 s`")
    ['47.8 %', '3.01x']
    >>> figures_in("17.1 degrees, beside the paper's 48.43 / 45.75 degrees; 4x conv subsampling, roll N(0, 3 deg)")
    ['17.1 degrees']
    """
    prose = _without_code_and_links(text)
    found = []
    for match in FIGURE.finditer(prose):
        before, after = prose[max(0, match.start() - 24) : match.start()], prose[match.end() : match.end() + 24]
        if _TARGET_BEFORE.search(before) or _TARGET_AFTER.match(after) or _QUOTED_BEFORE.search(before):
            continue
        if _SETTING_AFTER.match(after) or _SETTING_BEFORE.search(before):
            continue
        figure = " ".join(match.group(0).split())
        if figure not in SETTINGS:
            found.append(figure)
    return found


def names_command(text: str) -> bool:
    """Whether a block names a producing command.

    >>> names_command("measured by `python benchmarks/retrieval_scale.py --quick`")
    True
    >>> names_command("see `tests/model/test_inference.py::test_bf16`; also `--quick`")
    True
    >>> names_command("the `recall_at_k` function, benchmarks/retrieval_scale.py")
    False
    """
    if _COMMAND_MARKER.search(text):
        return True
    return any(_COMMAND.match(span.strip()) for span in _CODE_SPAN.findall(text))


def _missing_files(text: str, root: Path) -> list[str]:
    """Scripts and tests a block's commands name that do not exist (or whose test function does not)."""
    missing = []
    for span in [*_CODE_SPAN.findall(text), *_COMMAND_MARKER.findall(text)]:
        for path, test in _NAMED_FILE.findall(span):
            target = root / path
            if not target.is_file():
                missing.append(path)
            elif test and not re.search(rf"^\s*(?:async\s+)?def {test}\(", target.read_text(), flags=re.M):
                missing.append(f"{path}::{test}")
    return missing


def audit_text(text: str, path: str = "<text>", root: Path = ROOT) -> list[Finding]:
    """Findings in one markdown document: unsourced figures and commands naming files that do not exist."""
    findings = []
    for block in markdown_blocks(text):
        for missing in _missing_files(block.text, root):
            findings.append(Finding(path, block.line, block.text, problem=f"names {missing}, which does not exist"))
        figures = figures_in(block.text)
        if figures and not names_command(block.text) and not names_command(block.caption):
            findings.append(Finding(path, block.line, block.text, tuple(figures)))
    return findings


def audit_file(path: Path, root: Path = ROOT) -> list[Finding]:
    """Findings in one file, its path shown relative to ``root`` where it lies under it."""
    shown = path.resolve().relative_to(root) if path.resolve().is_relative_to(root) else path
    return audit_text(path.read_text(encoding="utf-8"), str(shown), root)


def _expand(patterns: Sequence[str], root: Path) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else [root / pattern]
        paths.extend(match for match in matches if match not in paths)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Audits the files; prints each finding and a count; returns 1 when there is any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=list(DEFAULT_PATHS), help="files or globs, relative to the root")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root (default: this checkout)")
    parser.add_argument("--exclude", nargs="*", default=[], help="files to leave out (paths relative to the root)")
    parser.add_argument("--quiet", action="store_true", help="print only the count")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    excluded = {(root / path).resolve() for path in args.exclude}
    files = [path for path in _expand(args.paths, root) if path.resolve() not in excluded]
    findings = []
    for path in files:
        if not path.is_file():
            parser.error(f"{path}: no such file; give paths relative to {root}")
        findings.extend(audit_file(path, root))
    if not args.quiet:
        for finding in findings:
            print(finding)
    print(f"# {len(findings)} finding(s) in {len(files)} file(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

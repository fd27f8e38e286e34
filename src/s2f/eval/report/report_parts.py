"""The pieces every section of ``report.html`` is built from: number formats, tables, protocol notes."""

from __future__ import annotations

import html

__all__ = ["STYLE", "num", "pct", "protocol_note", "table"]

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.protocol{background:#f8f8ee;padding:.5em 1em;border-left:4px solid #cc9}
.paper{color:#555;font-style:italic}figure{margin:1em 0}figcaption{font-size:90%;color:#444}
.verdict{font-weight:bold}.skipped{color:#777}
"""


def pct(value: float | None) -> str:
    """A rate as a percentage with two decimals, ``n/a`` for None.

    Example:
        >>> pct(0.12345), pct(None)
        ('12.35%', 'n/a')
    """
    return "n/a" if value is None else f"{100 * value:.2f}%"


def num(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals, ``n/a`` for None."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table of escaped text cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def protocol_note(text: str) -> str:
    """The boxed "Protocol." paragraph that opens a section."""
    return f'<p class="protocol"><b>Protocol.</b> {html.escape(text)}</p>'

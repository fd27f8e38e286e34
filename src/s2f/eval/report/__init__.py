"""What an evaluation shows: the self-contained HTML report and its parts, the figures, the protocols'
sections, the flat headline block of ``metrics.json`` and the logging to W&B or a Lightning logger.

The report reads the metrics (:mod:`s2f.eval.metrics`); the metrics never read the report.
"""

from __future__ import annotations

from .html_report import build_figures, render_html, summary_table

__all__ = ["build_figures", "render_html", "summary_table"]

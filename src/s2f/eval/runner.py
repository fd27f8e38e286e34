"""``evaluate``: every metric of the paper on one split, written as ``metrics.json`` and ``report.html``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .context import EvalContext, EvalOptions
from .data import HeldOut, load_held_out, predict_embeddings
from .metrics.gallery_rule import check_same_teacher
from .metrics.retrieval import choose_gallery
from .sections import PAPER, prepare_faces, run_sections

__all__ = ["PAPER", "EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        metrics: Nested dict of every number (the content of ``metrics.json``).
        report_path: Where ``report.html`` was written, or None when no ``out_dir`` was given.
    """

    metrics: dict[str, Any]
    report_path: Path | None = None

    def summary(self) -> str:
        """The headline numbers next to chance and the baselines, as a short plain-text table."""
        from .report.html_report import summary_table

        return summary_table(self.metrics)


def evaluate(
    model: Any,
    data_dir: str | os.PathLike[str],
    split: str = "test",
    out_dir: str | os.PathLike[str] | None = None,
    options: EvalOptions | None = None,
    *,
    logger: Any = None,
    **keywords: Any,
) -> EvalResult:
    """Evaluates a voice model on one split of a shard root, as the paper did.

    Args:
        model: A :class:`~s2f.Speech2Face`, or the path of a saved model folder or checkpoint.
        data_dir: The shard root.
        split: The held-out split to evaluate (its speakers must be unseen in training).
        out_dir: Folder for ``metrics.json`` and ``report.html``; None writes no files.
        options: How to evaluate (:class:`~s2f.eval.context.EvalOptions`); None: the defaults.
        logger: A Lightning logger or a ``wandb`` run to log the metrics and figures to.
        **keywords: Fields of :class:`~s2f.eval.context.EvalOptions` by name (``seconds=(3.0,)``,
            ``gallery_size=20``), changed from ``options``: the keyword call of s2f 0.1 still works.

    Returns:
        The metrics, and the report's path when one was written.
    """
    from ..model.speech2face import Speech2Face

    options = (options or EvalOptions()).with_keywords(**keywords)
    if not isinstance(model, Speech2Face):
        model = Speech2Face.from_pretrained(model)
    _check_request(model, split, options.seconds)
    held = load_held_out(data_dir, split, max_clips=options.max_clips, seed=options.seed)
    _check_compatible(model, held, data_dir)
    predicted = {
        f"{s:g}s": predict_embeddings(model, held.audio, s, progress=options.progress, settings=options.inference)
        for s in sorted({float(x) for x in options.seconds})
    }
    gallery_of = choose_gallery(held.clip_ids, held.speaker_ids)
    context = prepare_faces(EvalContext(model, data_dir, split, options, held, predicted, gallery_of))
    metrics = run_sections(context)
    faces_from_voice = None if context.decoded is None else context.decoded["s2f"]
    report_path = _write_report(metrics, context, faces_from_voice, out_dir=out_dir, logger=logger)
    return EvalResult(metrics, report_path)


def _write_report(
    metrics: dict[str, Any],
    context: EvalContext,
    faces_from_voice: Any,
    *,
    out_dir: str | os.PathLike[str] | None,
    logger: Any,
) -> Path | None:
    """Writes ``metrics.json`` and ``report.html`` into ``out_dir`` and logs them to ``logger`` (either may be None)."""
    report_path = None
    if out_dir is not None or logger is not None:
        from .report.html_report import build_figures, render_html

        figures = build_figures(
            metrics, context.held, context.predicted, context.gallery_of, faces_from_voice,
            seed=context.options.seed, model_rate=context.model.sample_rate,
        )  # fmt: skip
        html = render_html(metrics, figures)
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
            report_path = out / "report.html"
            report_path.write_text(html, encoding="utf-8")
        if logger is not None:
            from .report.tracking import log_evaluation

            log_evaluation(logger, metrics, figures, html)
    return report_path


def _check_request(model: Any, split: str, seconds: tuple[float, ...]) -> None:
    """No input length, or a model calibrated on ``split`` (its figures there would not be held out), is an error."""
    if not seconds:
        raise ConfigError("give at least one input length in seconds")
    if model.calibration is not None and model.calibration.fitted_on.get("split") == split:
        raise ConfigError(
            f"the model was calibrated on split {split!r}, so its figures there are not held out; evaluate another "
            "split, or calibrate on one that is not reported (s2f export --calibrate-on SHARDS --calibration-split "
            "train)"
        )


def _check_compatible(model: Any, held: HeldOut, data_dir: Any) -> None:
    check_same_teacher(
        data_dir, held.teacher, (model.teacher or {}).get("name"),
        fix="evaluate on shards prepared with the model's teacher",
        dims=(held.embeddings.shape[1], model.encoder.embed_dim),
    )  # fmt: skip

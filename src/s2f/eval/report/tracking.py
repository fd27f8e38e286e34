"""Logging an evaluation to Weights & Biases (or any Lightning logger)."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["flatten", "log_evaluation"]


def flatten(metrics: dict[str, Any], prefix: str = "eval") -> dict[str, float]:
    """Every number of a nested metrics dict as ``{"eval/a/b": value}`` (strings, lists and None left out).

    Example:
        >>> flatten({"similarity": {"6s": {"angle_deg": {"mean": 40.0}}}, "title": "x"})
        {'eval/similarity/6s/angle_deg/mean': 40.0}
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def log_evaluation(logger: Any, metrics: dict[str, Any], pictures: dict[str, tuple[str, bytes]], report: str) -> None:
    """Logs the scalar metrics, the figures and the report to a ``wandb`` run or a Lightning logger.

    A Lightning ``WandbLogger`` is unwrapped to its run; any other Lightning logger gets the scalars
    through ``log_metrics`` (figures need W&B).
    """
    scalars = flatten({k: v for k, v in metrics.items() if k != "paper"})
    run = _wandb_run(logger)
    if run is None:
        if not hasattr(logger, "log_metrics"):
            raise TypeError(f"logger must be a Lightning logger or a wandb run, got {type(logger).__name__}")
        logger.log_metrics(scalars)
        return
    import wandb
    from PIL import Image

    images = {
        f"eval/figures/{name}": wandb.Image(Image.open(io.BytesIO(png)), caption=caption)
        for name, (caption, png) in pictures.items()
    }
    run.log({**scalars, **images, "eval/report": wandb.Html(report)})
    run.summary.update(scalars)


def _wandb_run(logger: Any) -> Any:
    try:
        import wandb
    except ImportError:
        return None
    candidate = getattr(logger, "experiment", logger) if type(logger).__name__ == "WandbLogger" else logger
    return candidate if isinstance(candidate, wandb.sdk.wandb_run.Run) else None
